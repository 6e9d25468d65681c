"""X-ray sources: the divergence x dispersion grid, or an explicit source list.

Generated sources (``specs/setup.md``): for every kept (horizontal, vertical) divergence grid
point (horizontal outer, elliptical trimming unless ``-square_div``) a position 10 m upstream
is rotated by the vertical angle about the polarization vector, then by the horizontal angle
about unit(beam × polarization); each position gets every wavelength of the dispersion axis:
λ0·(1 + dispstep·k − dispersion/2), or a spectrum's wavelengths (``nbsim.model.spectra``).
Directions are unit vectors from the sample towards the source; the incident direction is
their negative.  A ``-sourcefile``'s weights are printed and never used, as in the reference;
a spectrum's are intensity weights: the render multiplies every term of a source by its weight.
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
    weights: Tensor  # (S,) printed: a source's share of the beam (a -sourcefile's as read)
    grid_points: list[tuple[float, float]]  # kept divergence grid points (h, v), radians
    #: (S,) what the render multiplies a source's terms by (mean 1), or None: every source 1,
    #: and the render is exactly the unweighted one (no product at all)
    intensity_weights: Tensor | None = None


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


def dispersion_wavelengths(wavelength: Tensor, dispersion: Tensor, dispstep: Tensor, dispsteps: int) -> Tensor:
    """The (dispsteps,) wavelengths of nanoBragg's dispersion, λ0·(1 + dispstep·k − dispersion/2)."""
    k = torch.arange(dispsteps, dtype=wavelength.dtype, device=wavelength.device)
    return wavelength * (1.0 + dispstep * k - dispersion / 2.0)


def generated_sources(
    *,
    kept: list[tuple[int, int]],
    beam: Tensor,
    polar: Tensor,
    wavelengths: Tensor,
    hdivrange: Tensor,
    hdivstep: Tensor,
    hdivsteps: int,
    vdivrange: Tensor,
    vdivstep: Tensor,
    vdivsteps: int,
    line_weights: Tensor | None = None,
    source_distance: float = 10.0,
) -> Sources:
    """Sources at the ``kept`` divergence grid points (see :func:`divergence_grid`), each with
    every one of the (D,) ``wavelengths`` (the dispersion axis: :func:`dispersion_wavelengths`
    or a spectrum's), weighted by ``line_weights`` (D,) (None: all 1); ranges and steps may be
    tensors (differentiable)."""
    vert, _ = unitize(cross(beam, polar))
    i = torch.tensor([k[0] for k in kept], dtype=beam.dtype, device=beam.device)
    j = torch.tensor([k[1] for k in kept], dtype=beam.dtype, device=beam.device)
    hdiv = hdivstep * i - hdivrange / 2.0
    vdiv = vdivstep * j - vdivrange / 2.0
    start = (-source_distance * beam).expand(len(kept), 3)
    pos = rotate_axis(start, polar, vdiv)
    pos = rotate_axis(pos, vert, hdiv)
    lines = wavelengths.shape[0]
    n = len(kept) * lines
    positions = pos[:, None, :].expand(len(kept), lines, 3).reshape(n, 3)
    per_source = wavelengths[None, :].expand(len(kept), lines).reshape(n)
    directions, _ = unitize(positions)
    points = [(float(a), float(b)) for a, b in zip(hdiv.detach(), vdiv.detach())]  # for printing
    if line_weights is None:
        weights = torch.full((n,), 1.0 / n, dtype=beam.dtype, device=beam.device)
        return Sources(directions, per_source, positions, weights, points)
    intensity = line_weights[None, :].expand(len(kept), lines).reshape(n)
    return Sources(directions, per_source, positions, intensity / n, points, intensity)


def listed_sources(*, table: Tensor, beam: Tensor, wavelength: Tensor, source_distance: float = 10.0) -> Sources:
    """Sources from a ``-sourcefile`` table (n, 5): X Y Z weight lambda, NaN = default."""
    default_pos = -source_distance * beam
    pos = torch.where(torch.isnan(table[:, :3]), default_pos.expand(table.shape[0], 3), table[:, :3])
    weights = torch.where(torch.isnan(table[:, 3]), torch.ones_like(table[:, 3]), table[:, 3])
    lambdas = torch.where(torch.isnan(table[:, 4]), wavelength.expand(table.shape[0]), table[:, 4])
    directions, _ = unitize(pos)
    return Sources(directions, lambdas, pos, weights, [])
