"""Polarization factors: Kahn's formula, and none (``specs/physics.md``).

Kahn: 0.5 (1 + cos^2 2θ - K cos 2ψ sin^2 2θ), where ψ is the angle of the diffracted ray,
projected on the plane normal to the incident beam, from the E-vector direction
unit(i x unit(p x i)) (p the polarization vector).  K = 0 gives the unpolarized
(1 + cos^2 2θ)/2.
"""

from __future__ import annotations

import attrs
import torch

from nbsim.hookspecs import hookimpl
from nbsim.vectors import cross, dot, unitize


@attrs.frozen
class KahnPolarization:
    name: str = "kahn"

    def factor(self, incident, diffracted, axis, kahn):
        incident, _ = unitize(incident)
        diffracted, _ = unitize(diffracted)
        c2 = dot(incident, diffracted)
        c2sq = c2 * c2
        s2sq = 1 - c2sq
        b_in, _ = unitize(cross(axis, incident))
        e_in, _ = unitize(cross(incident, b_in))
        # the reference skips psi when K == 0; the product K cos(2 psi) is then 0 all the same,
        # and computing psi keeps the derivative with respect to K right at K = 0
        psi = -torch.atan2(dot(diffracted, b_in), dot(diffracted, e_in))
        return 0.5 * (1.0 + c2sq - kahn * torch.cos(2 * psi) * s2sq)


@attrs.frozen
class NoPolarization:
    name: str = "none"

    def factor(self, incident, diffracted, axis, kahn):
        shape = torch.broadcast_shapes(incident.shape[:-1], diffracted.shape[:-1])
        return torch.ones(shape, dtype=diffracted.dtype, device=diffracted.device)


class BuiltinPolarizationPlugin:
    @hookimpl
    def nbsim_register_polarization_models(self, register):
        register(KahnPolarization())
        register(NoPolarization())
