"""Polarization factors: Kahn's formula, and none (``specs/physics.md``).

Kahn: 0.5 (1 + cos^2 2θ - K cos 2ψ sin^2 2θ), where ψ is the angle of the diffracted ray,
projected on the plane normal to the incident beam, from the E-vector direction
unit(i x unit(p x i)) (p the polarization vector); cos 2ψ is computed from the two
projections E, B as (E² − B²)/(E² + B²), which equals the reference's cos(2·atan2) to
rounding.  K = 0 gives the unpolarized (1 + cos^2 2θ)/2.  The formula (:func:`kahn_factor`)
is written once for tensors and numbers: each model's compiled form for the numba engine
(:mod:`nbsim.builtins.polarization_forms`) compiles the same function.
"""

from __future__ import annotations

import attrs
import torch

from nbsim.hookspecs import hookimpl
from nbsim.dual_math import formula, select
from nbsim.vectors import components, cross3, dot3, unit3, unitize


def _compiled_form(model: str):
    """The model's numba form (nbsim.compiled_forms), imported on first use: it imports numba."""
    from nbsim.builtins.polarization_forms import FORMS

    return FORMS[model]


@formula
def kahn_factor(incident, diffracted, axis, kahn, unpolarized):
    """Kahn's factor for unit incident and diffracted directions and the polarization ``axis``
    (triples, :mod:`nbsim.dual_math`); ``unpolarized`` (K = 0, no gradient wanted) takes the
    reference's shortcut, which gives the same value."""
    c2 = dot3(incident, diffracted)
    c2sq = c2 * c2
    if unpolarized:
        return 0.5 * (1.0 + c2sq)  # the reference's K = 0 case (psi is never needed)
    b_in, _ = unit3(cross3(axis, incident))
    e_in, _ = unit3(cross3(incident, b_in))
    # psi = -atan2(B, E) of the reference, so cos(2 psi) = (E^2 - B^2)/(E^2 + B^2)
    # (1 where both are 0, as atan2(0, 0) = 0 gives)
    E, B = dot3(diffracted, e_in), dot3(diffracted, b_in)
    norm = E * E + B * B
    some = norm > 0.0
    cos2psi = select(some, (E * E - B * B) / select(some, norm, 1.0), 1.0)
    return 0.5 * (1.0 + c2sq - kahn * cos2psi * (1.0 - c2sq))


@attrs.frozen
class KahnPolarization:
    name: str = "kahn"

    def factor(self, incident, diffracted, axis, kahn):
        unpolarized = not kahn.requires_grad and not torch.compiler.is_compiling() and bool(kahn == 0)
        incident, _ = unitize(incident)
        diffracted, _ = unitize(diffracted)
        return kahn_factor(components(incident), components(diffracted), components(axis), kahn, unpolarized)

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
