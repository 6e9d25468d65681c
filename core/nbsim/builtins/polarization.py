"""Polarization factors: Kahn's formula, and none (``specs/physics.md``).

Kahn: 0.5 (1 + cos^2 2θ - K cos 2ψ sin^2 2θ), where ψ is the angle of the diffracted ray,
projected on the plane normal to the incident beam, from the E-vector direction
unit(i x unit(p x i)) (p the polarization vector); cos 2ψ is computed from the two
projections E, B as (E² − B²)/(E² + B²), which equals the reference's cos(2·atan2) to
rounding.  K = 0 gives the unpolarized (1 + cos^2 2θ)/2.  Each model offers the numba engine
a compiled form of the same formula (:mod:`nbsim.builtins.polarization_forms`).
"""

from __future__ import annotations

import attrs
import torch

from nbsim.hookspecs import hookimpl
from nbsim.vectors import cross, dot, unitize


def _compiled_form(model: str):
    """The model's numba form (nbsim.compiled_forms), imported on first use: it imports numba."""
    from nbsim.builtins.polarization_forms import FORMS

    return FORMS[model]


@attrs.frozen
class KahnPolarization:
    name: str = "kahn"

    def factor(self, incident, diffracted, axis, kahn):
        incident, _ = unitize(incident)
        diffracted, _ = unitize(diffracted)
        c2 = dot(incident, diffracted)
        c2sq = c2 * c2
        s2sq = 1 - c2sq
        if not kahn.requires_grad and not torch.compiler.is_compiling() and bool(kahn == 0):
            return 0.5 * (1.0 + c2sq)  # the reference's K = 0 case (psi is never needed)
        b_in, _ = unitize(cross(axis, incident))
        e_in, _ = unitize(cross(incident, b_in))
        # psi = -atan2(B, E) of the reference, so cos(2 psi) = (E^2 - B^2)/(E^2 + B^2)
        # (1 where both are 0, as atan2(0, 0) = 0 gives)
        E, B = dot(diffracted, e_in), dot(diffracted, b_in)
        norm = E * E + B * B
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        cos2psi = torch.where(norm > 0, (E * E - B * B) / safe, torch.ones_like(norm))
        return 0.5 * (1.0 + c2sq - kahn * cos2psi * s2sq)

    def compiled_form(self):
        return _compiled_form("kahn")


@attrs.frozen
class NoPolarization:
    name: str = "none"

    def factor(self, incident, diffracted, axis, kahn):
        shape = torch.broadcast_shapes(incident.shape[:-1], diffracted.shape[:-1])
        return torch.ones(shape, dtype=diffracted.dtype, device=diffracted.device)

    def compiled_form(self):
        return _compiled_form("none")


class BuiltinPolarizationPlugin:
    @hookimpl
    def nbsim_register_polarization_models(self, register):
        register(KahnPolarization())
        register(NoPolarization())
