"""Polarization factors: Kahn's formula, and none (``specs/physics.md``).

Kahn: 0.5 (1 + cos^2 2θ - K cos 2ψ sin^2 2θ), where ψ is the angle of the diffracted ray,
projected on the plane normal to the incident beam, from the E-vector direction
unit(i x unit(p x i)) (p the polarization vector); cos 2ψ is computed from the two
projections E, B as (E² − B²)/(E² + B²), which equals the reference's cos(2·atan2) to
rounding.  K = 0 gives the unpolarized (1 + cos^2 2θ)/2.  The formula (:func:`nbsim.physics.kahn.kahn_factor`)
is written once for tensors and numbers: each model's compiled form for the numba engine
(:mod:`nbsim.plugins.builtins.polarization_forms`) compiles the same function.
"""

from __future__ import annotations

import attrs
import torch

from nbsim.physics.kahn import kahn_factor
from nbsim.physics.vectors import components, unitize
from nbsim.plugins.hookspecs import hookimpl
from nbsim.protocols import PolarizationModel


def _compiled_form(model: str):
    """The model's numba form (nbsim.plugins.compiled_forms), imported on first use: it imports numba."""
    from nbsim.plugins.builtins.polarization_forms import FORMS

    return FORMS[model]


@attrs.frozen
class KahnPolarization(PolarizationModel):
    name: str = "kahn"

    def factor(self, incident, diffracted, axis, kahn):
        unpolarized = not kahn.requires_grad and not torch.compiler.is_compiling() and bool(kahn == 0)
        incident, _ = unitize(incident)
        diffracted, _ = unitize(diffracted)
        return kahn_factor(components(incident), components(diffracted), components(axis), kahn, unpolarized)

    def compiled_form(self):
        return _compiled_form("kahn")


@attrs.frozen
class NoPolarization(PolarizationModel):
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
