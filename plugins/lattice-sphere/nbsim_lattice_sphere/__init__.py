"""Lattice factor ``sphere``: the shape transform of a spherical crystal of Na·Nb·Nc cells.

F_latt(q) = N · 3 (sin x − x cos x)/x³ with x = 2π q R, q = |(hkl − hkl0)·(a*, b*, c*)| in Å⁻¹
and R = (3 N V_cell / 4π)^(1/3) in Å, N = Na·Nb·Nc.  Near x = 0 a series keeps the value and
its gradient exact (the closed form cancels catastrophically there).

Its compiled form (``compiled_form``, ``_compiled.py``) gives it nbsim's numba engine.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from nbsim import hookimpl
from nbsim.protocols import LatticeFactor

__version__ = "0.1.0"

SERIES_BELOW = 0.05  # x below which the Taylor series is used


def sphere_transform(x2: Tensor) -> Tensor:
    """3 (sin x − x cos x)/x³ as a function of x², 1 at x = 0."""
    small = x2 < SERIES_BELOW * SERIES_BELOW
    series = 1.0 - x2 / 10.0 + x2 * x2 / 280.0 - x2 * x2 * x2 / 15120.0
    x = torch.sqrt(torch.where(small, torch.ones_like(x2), x2))
    exact = 3.0 * (torch.sin(x) - x * torch.cos(x)) / (x * x * x)
    return torch.where(small, series, exact)


@attrs.frozen
class SphereLattice(LatticeFactor):
    name: str = "sphere"

    def evaluate(self, hkl: Tensor, hkl0: Tensor, n_cells: Tensor, fudge: Tensor, reciprocal: Tensor) -> Tensor:
        d = (hkl - hkl0).to(n_cells.dtype)  # exact in double, then the working precision
        dq = d[..., 0:1] * reciprocal[0] + d[..., 1:2] * reciprocal[1] + d[..., 2:3] * reciprocal[2]
        q2 = (dq * dq).sum(-1)
        v_star = torch.dot(reciprocal[0], torch.linalg.cross(reciprocal[1], reciprocal[2]))
        cells = n_cells[0] * n_cells[1] * n_cells[2]
        radius = (3.0 * cells / (4.0 * math.pi * v_star.abs())) ** (1.0 / 3.0)
        x2 = (2.0 * math.pi * radius) ** 2 * q2
        return cells * sphere_transform(x2)

    def compiled_form(self):
        """The numba cfunc of the same formula, for nbsim's CPU loop (nbsim.plugins.compiled_forms)."""
        from nbsim_lattice_sphere._compiled import sphere_form

        return sphere_form


class SpherePlugin:
    plugin_name = "lattice-sphere"  # its entry point's name, also when registered as an object

    @hookimpl
    def nbsim_register_lattice_factors(self, register):
        register(SphereLattice())


plugin = SpherePlugin()
