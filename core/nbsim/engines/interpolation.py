"""Tricubic interpolation of structure factors between grid points (``specs/physics.md``).

At fractional hkl the reference evaluates the 4-point Lagrange polynomial through the grid
values at floor(hkl) - 1 .. floor(hkl) + 2, along l first, then k, then h, with every product
in the same order as its ``polint``.  An evaluation is "out of range" when
h - h_min + 3 > h_range or h - 2 < h_min (likewise k and l): then the reference warns once
and switches to nearest-neighbour structure factors for that evaluation and every later one
in its loop order; the kernel finds that evaluation by its position, without looping.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from nbsim.model.build import Model


@attrs.frozen
class InterpolationSwitch:
    """The evaluation that ended interpolation: its (h, k, l, h0, k0, l0) and pixel (flat index)."""

    hkl: tuple[float, float, float, int, int, int]
    pixel: int


def out_of_range(m: Model, hkl: Tensor) -> Tensor:
    sf = m.config.crystal.structure_factors
    lo = torch.tensor([sf.h_min, sf.k_min, sf.l_min], dtype=hkl.dtype, device=hkl.device)
    span = torch.tensor([sf.h_max - sf.h_min + 1, sf.k_max - sf.k_min + 1, sf.l_max - sf.l_min + 1],
                        dtype=hkl.dtype, device=hkl.device)
    return ((hkl - lo + 3 > span) | (hkl - 2 < lo)).any(dim=-1)


def _polint(nodes: Tensor, values: Tensor, t: Tensor) -> Tensor:
    """Lagrange polynomial through (nodes[i], values[..., i]) at t, in the reference's order."""
    x0, x1, x2, x3 = nodes.unbind(-1)
    y0, y1, y2, y3 = values.unbind(-1)
    l0 = (t - x1) * (t - x2) * (t - x3) * y0 / ((x0 - x1) * (x0 - x2) * (x0 - x3))
    l1 = (t - x0) * (t - x2) * (t - x3) * y1 / ((x1 - x0) * (x1 - x2) * (x1 - x3))
    l2 = (t - x0) * (t - x1) * (t - x3) * y2 / ((x2 - x0) * (x2 - x1) * (x2 - x3))
    l3 = (t - x0) * (t - x1) * (t - x2) * y3 / ((x3 - x0) * (x3 - x1) * (x3 - x2))
    return l0 + l1 + l2 + l3


def tricubic(m: Model, hkl: Tensor) -> Tensor:
    """Interpolated F at hkl (..., 3); values out of range are meaningless (indices clamped)."""
    sf = m.config.crystal.structure_factors
    shape = m.F_shape
    floor = torch.floor(hkl)
    offsets = torch.arange(-1, 3, dtype=hkl.dtype, device=hkl.device)
    nodes = floor[..., None] + offsets  # (..., 3, 4)
    lo = torch.tensor([sf.h_min, sf.k_min, sf.l_min], device=hkl.device)
    size = torch.tensor(shape, device=hkl.device)
    rel = nodes.to(torch.int64) - lo[:, None]
    rel = torch.minimum(torch.maximum(rel, torch.zeros_like(rel)), (size - 1)[:, None])
    ih, ik, il = rel.unbind(-2)
    flat = (ih[..., :, None, None] * shape[1] + ik[..., None, :, None]) * shape[2] + il[..., None, None, :]
    Y = m.F_grid[flat]  # (..., 4, 4, 4) indexed [h][k][l]
    nh, nk, nl = nodes.unbind(-2)
    h, k, l = hkl.unbind(-1)
    along_l = _polint(nl[..., None, None, :], Y, l[..., None, None])  # (..., 4, 4)
    along_k = _polint(nk[..., None, :], along_l, k[..., None])  # (..., 4)
    return _polint(nh, along_k, h)
