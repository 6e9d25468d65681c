"""X-ray sources: the divergence x dispersion grid, or an explicit source list.

Generated sources (``specs/setup.md``): for every kept (horizontal, vertical) divergence grid
point (horizontal outer, elliptical trimming unless ``-square_div``) a position 10 m upstream
is rotated by the vertical angle about the polarization vector, then by the horizontal angle
about unit(beam × polarization); each position gets every wavelength
λ0·(1 + dispstep·k − dispersion/2).  Directions are unit vectors from the sample towards the
source; the incident direction is their negative.  Source weights are never used.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from nbsim.physics.vectors import cross, rotate_axis, unitize


@attrs.frozen
class Sources:
    """Sources as (S, 3) unit directions (sample -> source) and (S,) wavelengths in metres."""

    directions: Tensor
    wavelengths: Tensor
    positions: Tensor  # (S, 3) before normalisation, for printing
    weights: Tensor  # (S,)
    grid_points: list[tuple[float, float]]  # kept divergence grid points (h, v), radians


def divergence_grid(
    hsteps: int, hrange: float, hstep: float, vsteps: int, vrange: float, vstep: float, round_div: bool
) -> list[tuple[int, int]]:
    """Indices (i, j) of the kept grid points, in creation order (horizontal outer)."""
    kept = []
    for i in range(hsteps):
        for j in range(vsteps):
            h = hstep * i - hrange / 2.0
            v = vstep * j - vrange / 2.0
            with_nan = _trim_test(h, hstep, hsteps, hrange) + _trim_test(v, vstep, vsteps, vrange)
            # a zero range gives 0/0 = NaN, and NaN*4 > 1.1 is false: nothing is trimmed
            if round_div and not math.isnan(with_nan) and with_nan * 4.0 > 1.1:
                continue
            kept.append((i, j))
    return kept


def _trim_test(x: float, step: float, steps: int, rng: float) -> float:
    num = x * x - step * step / 4.0 * (1 - steps % 2)
    if rng == 0.0:
        return math.nan if num == 0.0 else math.copysign(math.inf, num)
    return num / rng / rng


def generated_sources(
    *,
    kept: list[tuple[int, int]],
    beam: Tensor,
    polar: Tensor,
    wavelength: Tensor,
    hdivrange: Tensor,
    hdivstep: Tensor,
    hdivsteps: int,
    vdivrange: Tensor,
    vdivstep: Tensor,
    vdivsteps: int,
    dispersion: Tensor,
    dispstep: Tensor,
    dispsteps: int,
    source_distance: float = 10.0,
) -> Sources:
    """Sources at the ``kept`` divergence grid points (see :func:`divergence_grid`), each with
    every wavelength; ranges and steps may be tensors (differentiable)."""
    vert, _ = unitize(cross(beam, polar))
    i = torch.tensor([k[0] for k in kept], dtype=beam.dtype, device=beam.device)
    j = torch.tensor([k[1] for k in kept], dtype=beam.dtype, device=beam.device)
    hdiv = hdivstep * i - hdivrange / 2.0
    vdiv = vdivstep * j - vdivrange / 2.0
    start = (-source_distance * beam).expand(len(kept), 3)
    pos = rotate_axis(start, polar, vdiv)
    pos = rotate_axis(pos, vert, hdiv)
    k = torch.arange(dispsteps, dtype=beam.dtype, device=beam.device)
    lambdas = wavelength * (1.0 + dispstep * k - dispersion / 2.0)
    n = len(kept) * dispsteps
    positions = pos[:, None, :].expand(len(kept), dispsteps, 3).reshape(n, 3)
    wavelengths = lambdas[None, :].expand(len(kept), dispsteps).reshape(n)
    directions, _ = unitize(positions)
    weights = torch.full((n,), 1.0 / n, dtype=beam.dtype, device=beam.device)
    points = [(float(a), float(b)) for a, b in zip(hdiv.detach(), vdiv.detach())]  # for printing
    return Sources(directions, wavelengths, positions, weights, points)


def listed_sources(*, table: Tensor, beam: Tensor, wavelength: Tensor, source_distance: float = 10.0) -> Sources:
    """Sources from a ``-sourcefile`` table (n, 5): X Y Z weight lambda, NaN = default."""
    default_pos = -source_distance * beam
    pos = torch.where(torch.isnan(table[:, :3]), default_pos.expand(table.shape[0], 3), table[:, :3])
    weights = torch.where(torch.isnan(table[:, 3]), torch.ones_like(table[:, 3]), table[:, 3])
    lambdas = torch.where(torch.isnan(table[:, 4]), wavelength.expand(table.shape[0]), table[:, 4])
    directions, _ = unitize(pos)
    return Sources(directions, lambdas, pos, weights, [])
