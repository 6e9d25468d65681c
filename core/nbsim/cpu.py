"""The compiled CPU path: when it applies, and its inputs (see :mod:`nbsim._cpu_jit`).

It renders exactly what :func:`nbsim.kernel.render_pixels` renders, for the common case:
CPU, no gradient, built-in lattice shapes and polarization models (they declare
``cpu_kernel``; in single precision the square shape only), a phi policy whose orientations depend at most on whether a pass is the first
of its row block (it declares ``pass_dependence``), no tricubic interpolation, no
``-oversample_thick/_polar/_omega`` running products and no tracing.  Anything else uses the
tensor kernel.  Results agree with it to rounding (``tests/test_cpu_path.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from nbsim.kernel import PassOrder, Physics, orientations
from nbsim.model import R_E_SQR, Model
from nbsim.protocols import Passes

SHAPES = {"square": 0, "round": 1, "gauss": 2, "tophat": 3}
POLARIZATIONS = {"none": 0, "kahn": 1}

try:
    import numba

    from nbsim import _cpu_jit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps nbsim usable without it
    _cpu_jit = None


def applicable(m: Model, physics: Physics) -> bool:
    cfg = m.config
    s = cfg.sampling
    return (
        _cpu_jit is not None
        and m.device.type == "cpu"
        and (m.compute_dtype == torch.float64
             or (m.compute_dtype == torch.float32 and getattr(physics.lattice, "cpu_kernel", None) == "square"))
        and not (torch.is_grad_enabled() and m.anchor.requires_grad)  # every parameter reaches the anchor
        and not cfg.crystal.interpolate
        and not (s.oversample_thick or s.oversample_polar or s.oversample_omega)
        and getattr(physics.lattice, "cpu_kernel", None) in SHAPES
        and getattr(physics.polarization, "cpu_kernel", None) in POLARIZATIONS
        and getattr(physics.policy, "pass_dependence", None) in ("none", "first-in-block")
    )


def _shape_code(m: Model, physics: Physics) -> int:
    """The loop's lattice code; single precision has its own square-shape loop."""
    if m.compute_dtype == torch.float32:
        return _cpu_jit.SINGLE_SQUARE
    return SHAPES[physics.lattice.cpu_kernel]


def _variant_tables(m: Model, physics: Physics) -> tuple[np.ndarray, int]:
    """Orientation tables (V, R, 3, 3): [other passes, first pass of a block] and the first's row."""
    probe = Passes(ordinal=torch.tensor([1, 0]), block=torch.tensor([0, 0]),
                   executed=torch.tensor([True, True]), block_first=torch.tensor([0]))
    tables = orientations(m, physics, probe)  # (1 or 2, R, 3, 3)
    if tables.shape[0] == 1:
        return tables.numpy(), 0
    return tables.numpy(), 1


def render_pixels(m: Model, idx: torch.Tensor, physics: Physics, order: PassOrder) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = m.config
    d, b, c = cfg.detector, cfg.beam, cfg.crystal
    g = m.geometry
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    geo = np.zeros((6, 4))
    for row, vec in enumerate((g.pix0, g.fdet, g.sdet, g.odet, g.beam)):
        geo[row, :3] = vec.numpy()
    geo[5] = [float(m.pixel_size), float(m.subpixel_size), float(g.distance), float(g.close_distance)]
    tables, variant_first = _variant_tables(m, physics)
    constant_F = m.F_grid is None or c.hkls == 0
    sf = c.structure_factors
    if constant_F:
        grid, lo, hi, gshape = np.zeros(1), np.zeros(3, np.int64), np.zeros(3, np.int64), np.ones(3, np.int64)
    else:
        grid = m.F_grid.numpy()
        lo = np.array([sf.h_min, sf.k_min, sf.l_min], dtype=np.int64)
        hi = np.array([sf.h_max, sf.k_max, sf.l_max], dtype=np.int64)
        gshape = np.array(m.F_shape, dtype=np.int64)
    Q = m.thicksteps * m.oversample * m.oversample * m.n_sources
    values, omegas = _cpu_jit.render_pixels(
        idx.numpy(), d.fpixels, geo, d.curved, d.point_pixel, m.oversample, m.thicksteps, float(m.thickstep),
        float(m.mu), d.thickness, m.sources.directions.numpy(), m.sources.wavelengths.numpy(), cfg.sampling.dmin,
        POLARIZATIONS[physics.polarization.cpu_kernel], float(m.kahn), m.polar_vector.numpy(), b.nopolar,
        tables, variant_first, order.block_of_row.numpy(), order.block_first.numpy(), Q,
        _shape_code(m, physics), m.n_cells.numpy(), float(m.fudge), m.lattice.reciprocal.numpy(),
        grid, lo, hi, gshape, float(m.default_F), constant_F,
        float(R_E_SQR * m.fluence / m.steps), float(m.I_bg),
    )
    return torch.from_numpy(values), torch.from_numpy(omegas)
