"""Unit cell, orientation and lattice vectors (``specs/setup.md``).

A cell (a, b, c in Å, angles in radians) gives reciprocal vectors in the reference
program's standard setting (a* along x, b* in the xy plane); a MOSFLM matrix gives them
directly.  A misset rotates the reciprocal vectors about lab x, then y, then z.  The real
space vectors are then derived from the (rotated) reciprocal ones and, when a cell was given,
forced to its lengths and volume, exactly as the reference does.  Everything is a tensor
function, differentiable in the cell, the matrix and the misset angles.
"""

from __future__ import annotations

import math
import sys

import attrs
import torch
from torch import Tensor

from nbsim.physics.vectors import cross, dot, norm, rotate_xyz

DBL_MIN = sys.float_info.min


@attrs.frozen
class Lattice:
    """Real (Å) and reciprocal (Å⁻¹) vectors as rows of (3, 3) tensors, and the cell volume."""

    real: Tensor  # rows a, b, c in Å
    reciprocal: Tensor  # rows a*, b*, c* in Å⁻¹
    volume: Tensor  # Å^3
    notices: tuple[str, ...] = ()


def reciprocal_from_cell(cell: Tensor) -> tuple[Tensor, Tensor, list[str]]:
    """Reciprocal vectors (rows, Å⁻¹) and volume (Å^3) of a cell (a, b, c, alpha, beta, gamma)."""
    a, b, c, alpha, beta, gamma = cell.unbind()
    notices = []
    aavg = (alpha + beta + gamma) / 2
    skew = torch.sin(aavg) * torch.sin(aavg - alpha) * torch.sin(aavg - beta) * torch.sin(aavg - gamma)
    skew = torch.abs(skew)
    volume = 2.0 * a * b * c * torch.sqrt(skew)
    if not bool(volume > 0):
        notices.append(f"WARNING: impossible unit cell volume: {float(volume):g}")
        volume = torch.where(volume > 0, volume, torch.full_like(volume, DBL_MIN))
    vstar = 1.0 / volume
    a_len = b * c * torch.sin(alpha) * vstar
    b_len = c * a * torch.sin(beta) * vstar
    c_len = a * b * torch.sin(gamma) * vstar
    sin_g = c * vstar / a_len / b_len
    cos_a = (torch.cos(beta) * torch.cos(gamma) - torch.cos(alpha)) / (torch.sin(beta) * torch.sin(gamma))
    cos_b = (torch.cos(gamma) * torch.cos(alpha) - torch.cos(beta)) / (torch.sin(gamma) * torch.sin(alpha))
    cos_g = (torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma)) / (torch.sin(alpha) * torch.sin(beta))
    sin_g = torch.clamp(sin_g, -1.0, 1.0)
    one = torch.ones_like(cos_a)
    cos_a = torch.where(cos_a * cos_a > 1.0, one, cos_a)
    cos_b = torch.where(cos_b * cos_b > 1.0, one, cos_b)
    cos_g = torch.where(cos_g * cos_g > 1.0, one, cos_g)
    zero = torch.zeros_like(a_len)
    astar = torch.stack((a_len, zero, zero))
    bstar = torch.stack((b_len * cos_g, b_len * sin_g, zero))
    cstar = torch.stack((
        c_len * cos_b,
        c_len * (cos_a - cos_b * cos_g) / sin_g,
        c_len * volume / (a * b * c * sin_g),
    ))
    return torch.stack((astar, bstar, cstar)), volume, notices


def _rescale(v: Tensor, magnitude: Tensor) -> Tensor:
    old = norm(v)
    old = torch.where(old <= 0, torch.ones_like(old), old)
    return magnitude / old * v


def build_lattice(
    *,
    cell: Tensor | None,
    matrix: Tensor | None,
    wavelength: Tensor,
    misset: Tensor | None,
) -> Lattice:
    """Real and reciprocal lattice vectors after misset, as the reference derives them.

    :param cell: (6,) a, b, c (Å), alpha, beta, gamma (radians), or None.
    :param matrix: (3, 3) rows a*, b*, c* as read from a MOSFLM matrix (λ-scaled), or None;
        it takes precedence over the cell's orientation, the cell still fixing lengths.
    :param wavelength: metres; converts the matrix to Å⁻¹.
    :param misset: (3,) radians about x, y, z, or None.
    """
    notices: list[str] = []
    volume_cell = None
    if cell is not None:
        recip, volume_cell, cell_notices = reciprocal_from_cell(cell)
        notices += cell_notices
    if matrix is not None:
        recip = (1e-10 / wavelength) * matrix
    if misset is not None:
        recip = rotate_xyz(recip, misset[0], misset[1], misset[2])
    astar, bstar, cstar = recip.unbind()
    a_x_b = cross(astar, bstar)
    b_x_c = cross(bstar, cstar)
    c_x_a = cross(cstar, astar)
    vstar = dot(astar, b_x_c)
    if cell is not None:
        b_x_c = _rescale(b_x_c, cell[0] / volume_cell)
        c_x_a = _rescale(c_x_a, cell[1] / volume_cell)
        a_x_b = _rescale(a_x_b, cell[2] / volume_cell)
        vstar = 1.0 / volume_cell
    volume = 1.0 / vstar
    a = volume * b_x_c
    b = volume * c_x_a
    c = volume * a_x_b
    astar = vstar * cross(b, c)
    bstar = vstar * cross(c, a)
    cstar = vstar * cross(a, b)
    return Lattice(
        real=torch.stack((a, b, c)), reciprocal=torch.stack((astar, bstar, cstar)), volume=volume,
        notices=tuple(notices),
    )


def cell_parameters(vectors: Tensor, dual: Tensor, volume: Tensor, dual_volume: Tensor) -> list[float]:
    """Lengths and angles (degrees) of ``vectors`` for printing, as the reference computes them.

    ``dual`` are the vectors of the other space, used for the sines (|a*|·V/(|b||c|)).
    """
    lengths = [float(norm(v)) for v in vectors]
    dual_len = [float(norm(v)) for v in dual]
    V = float(volume)
    out = list(lengths)
    for i, (j, k) in enumerate(((1, 2), (0, 2), (0, 1))):
        s = dual_len[i] * V / lengths[j] / lengths[k]
        co = float(dot(vectors[j], vectors[k])) / lengths[j] / lengths[k]
        s = min(max(s, -1.0), 1.0)
        if co * co > 1.0:
            co = 1.0
        out.append(math.atan2(s, co) * 180.0 / math.pi)
    return out
