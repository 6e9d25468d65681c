"""The compiled CPU path: when it applies, and its inputs (see :mod:`nbsim.engines.numba_loop`).

It renders exactly what :func:`nbsim.engines.tensor_kernel.render_pixels` renders, for the common case:
CPU, no gradient, lattice factors and polarization models with a compiled form
(:mod:`nbsim.plugins.compiled_forms`; the built-ins offer theirs, which the loop inlines), a phi
policy whose orientations depend at most on whether a pass is the first of its row block (it
offers ``shared_tables``), no tracing (running products of ``-oversample_thick/_polar/_omega``
included, tricubic interpolation where they are absent); :func:`refusal` says which of these a render
lacks (the engine ``numba`` of :mod:`nbsim.engines.choice`).  Results agree with the tensor kernel
to rounding (``tests/test_cpu_path.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from nbsim.engines.interpolation import InterpolationSwitch
from nbsim.engines.tensor_kernel import (
    PassOrder,
    PassOrientations,
    records_gradients,
    running_products,
    variant_tables,
)
from nbsim.model.build import R_E_SQR, Model
from nbsim.physics import jit
from nbsim.plugins.compiled_forms import LATTICE_PARAMS, lattice_form_of, polarization_form_of
from nbsim.plugins.selection import Physics


@functools.cache
def loop():
    """The loop's module (:mod:`nbsim.engines.numba_loop`), or None without numba (imported on first use)."""
    if jit.numba() is None:  # pragma: no cover - numba is a dependency
        return None
    from nbsim.engines import numba_loop

    return numba_loop


#: what a render that must first compile the loop says (see :func:`nbsim.physics.jit.will_compile`)
COMPILE_NOTICE = "compiling the CPU kernel, once per installation: about 30 s"
#: set in the process that compiles the loop for another (:func:`compile_apart`)
COMPILING_APART = "NBSIM_COMPILING_APART"


def compile_apart() -> bool:
    """Compile the loop in a child process, which leaves it in the cache for this one to load;
    True when it did.

    The loop numba compiles in a process runs about 5x slower there than the same loop loaded
    from the cache by another process (measured on P2 and P4: 0.60 s against 0.11 s, 11.6 s
    against 2.1 s; cause unknown), so a first render compiles it apart.  Where the cache cannot
    be written, or in the child itself, this process compiles it (slower, but correct).
    """
    import os
    import subprocess
    import sys

    if os.environ.get(COMPILING_APART):
        return False
    env = dict(os.environ, **{COMPILING_APART: "1"})
    try:
        done = subprocess.run([sys.executable, "-c", "from nbsim.engines.warm_up import warm_cache; warm_cache()"], env=env,
                              capture_output=True, timeout=900)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def refusal(m: Model, physics: Physics) -> str | None:
    """Why the loop cannot render ``m`` with ``physics``, or None when it can."""
    if m.device.type != "cpu":
        return f"it runs on the CPU, not on {m.device.type}"
    if m.compute_dtype not in (torch.float64, torch.float32):  # pragma: no cover - the model allows no other
        return f"it renders in float64 or float32, not {m.compute_dtype}"
    if records_gradients(m):
        return "it computes no gradients, and a parameter requires one"
    if m.config.crystal.interpolate and running_products(m):
        return "its loop has no -interpolate with -oversample_thick/_polar/_omega"
    if lattice_form_of(physics.lattice) is None:
        return f"lattice factor {physics.lattice.name!r} has no compiled form"
    if polarization_form_of(physics.polarization) is None:
        return f"polarization model {physics.polarization.name!r} has no compiled form"
    if not PassOrientations.shared(physics):
        return f"phi policy {physics.policy.name!r} has no shared_tables (its orientations may differ per pass)"
    if loop() is None:  # pragma: no cover - numba is a dependency
        return "numba is not installed"
    return None


def _lattice_code(physics: Physics) -> tuple[int, object]:
    """The loop's shape code and form for the lattice factor's compiled form: a form the loop
    inlines (a built-in shape's) by its code, any other as FORM, called through its pointer."""
    from nbsim.plugins.builtins.lattice_forms import INLINE

    form = lattice_form_of(physics.lattice)
    if form in INLINE:
        return INLINE[form], loop().no_form
    return loop().FORM, form


def _polarization_code(physics: Physics) -> tuple[int, object]:
    """The loop's code and form for the polarization model's compiled form (as :func:`_lattice_code`)."""
    from nbsim.plugins.builtins.polarization_forms import INLINE

    form = polarization_form_of(physics.polarization)
    if form in INLINE:
        return INLINE[form], loop().no_polar_form
    return loop().POLAR_FORM, form


#: the largest |h - h_reference| (reciprocal-lattice units) a single-precision lattice sum
#: may carry; beyond it the rounding of the difference outgrows the float32 tolerance
NEAR_SPAN = 4.0


def _row_norms(t: np.ndarray) -> np.ndarray:
    """Lengths of the a, b, c rows of tables laid out (..., 9, R): (..., 3, R)."""
    return np.sqrt((t.reshape(*t.shape[:-2], 3, 3, t.shape[-1]) ** 2).sum(axis=-2))


def _precision_plan(m: Model, physics: Physics, tables: np.ndarray) -> tuple:
    """How the loop takes the lattice sums: (mode, refs (G, 9), deltas (G, 9, M), mean source (4,),
    source offsets (S, G, 3)).

    Single precision (``--dtype float32``, square shape, whole N) splits h = t·S into a
    reference part t̄·S̄, the group's reference orientation t̄ (the mean of one group, else of
    each phi step's domains) at the mean source S̄, taken in double precision, and a small
    remainder t̄·(S - S̄) + (t - t̄)·S taken in single precision; of t̄·(S - S̄), the part
    t̄·(src/λ - mean src/λ) depends only on the source and is taken here.  Where that remainder could
    exceed NEAR_SPAN, or each reference serves a single evaluation (the split would cost more
    than it saves), the sums stay in double precision.
    """
    R = tables.shape[2]
    double = (loop().DOUBLE, np.zeros((1, 9)), np.zeros((1, 9, 1), np.float32), np.zeros(4),
              np.zeros((1, 1, 3), np.float32))
    n = m.n_cells.numpy()
    if (m.compute_dtype != torch.float32 or _lattice_code(physics)[0] != loop().SQUARE
            or running_products(m) or m.config.crystal.interpolate
            or not np.array_equal(n, np.round(n))):
        return double
    inv_lambda = 1.0 / m.sources.wavelengths.numpy()
    weighted = m.sources.directions.numpy() * inv_lambda[:, None]
    mean = np.append(weighted.mean(axis=0), inv_lambda.mean())
    # |S - S̄| <= |1/λ - mean 1/λ| + |src/λ - mean src/λ| and |S| <= 2/λ for a unit diffracted direction
    spread = (np.abs(inv_lambda - mean[3]) + np.linalg.norm(weighted - mean[:3], axis=1)).max()
    s_max = 2.0 * inv_lambda.max()
    for groups in dict.fromkeys((1, m.phisteps)):
        if m.n_sources * R // groups == 1:
            break
        grouped = tables[0].reshape(9, groups, R // groups).transpose(1, 0, 2)  # (G, 9, M)
        refs = grouped.mean(axis=-1)
        delta = grouped - refs[..., None]
        span = _row_norms(refs[..., None]).max() * spread + _row_norms(delta).max() * s_max
        if span <= NEAR_SPAN:
            offsets = np.einsum("gab,sb->sga", refs.reshape(-1, 3, 3), weighted - mean[:3])
            return (loop().NEAR, refs, np.ascontiguousarray(delta, dtype=np.float32), mean,
                    np.ascontiguousarray(offsets, dtype=np.float32))
    return double


def _variant_tables(m: Model, physics: Physics) -> tuple[np.ndarray, int]:
    """Orientation tables (V, 9, R): [other passes, first pass of a block] and the first's row."""
    tables = PassOrientations.single(m, variant_tables(m, physics)).block(0, m.phisteps * m.domains)  # (1|2, R, 3, 3)
    tables = np.ascontiguousarray(tables.reshape(tables.shape[0], -1, 9).transpose(1, 2).numpy())
    return tables, 0 if tables.shape[0] == 1 else 1


def _panel_geometry(m: Model) -> list[tuple]:
    """Per panel, what the loop takes of it: (geo (6, 4), layer thickness, mu, thickness);
    ``geo`` rows origin, fast, slow, normal, beam (x, y, z, 0), then (pixel size, sub-pixel
    size, distance, close distance); distance and beam place the curved detector (one panel)."""
    p, g = m.panels, m.geometry
    out = []
    for k in range(p.count):
        geo = np.zeros((6, 4))
        for row, vec in enumerate((p.origin[k], p.fast[k], p.slow[k], p.normal[k], g.beam)):
            geo[row, :3] = vec.numpy()
        pixel = float(p.pixel_size[k])
        geo[5] = [pixel, pixel / m.oversample, float(g.distance), float(p.close_distance[k])]
        out.append((geo, float(p.thickstep[k]), float(p.mu[k]), float(p.thickness[k])))
    return out


def pixel_renderer(m: Model, physics: Physics, order: PassOrder,
                   notice: Callable[[str], None] | None = None) -> Callable[[torch.Tensor, bool], tuple]:
    """The loop bound to one render's inputs, prepared once: a chunk renderer of
    :mod:`nbsim.engines.choice` (``render(idx, interpolating)`` gives the values (P,), solid-angle
    sums (P,) and interpolation switch of the pixels ``idx``, flat indices in order).

    :param notice: told :data:`COMPILE_NOTICE` before a first call that will compile the loop.
    """
    numba = jit.numba()  # loaded by now: the render applies
    compiled_loop = loop()
    cfg = m.config
    d, b, c = cfg.detector, cfg.beam, cfg.crystal
    geos = _panel_geometry(m)
    tables, variant_first = _variant_tables(m, physics)
    constant_F = m.F_grid is None or c.hkls == 0
    hkl = c.structure_factors
    if constant_F:
        grid, lo, hi, gshape = np.zeros(1), np.zeros(3, np.int64), np.zeros(3, np.int64), np.ones(3, np.int64)
    else:
        grid = m.F_grid.numpy()
        lo = np.array([hkl.h_min, hkl.k_min, hkl.l_min], dtype=np.int64)
        hi = np.array([hkl.h_max, hkl.k_max, hkl.l_max], dtype=np.int64)
        gshape = np.array(m.F_shape, dtype=np.int64)
    precision, refs, deltas, source_mean, source_offsets = _precision_plan(m, physics, tables)
    lattice = (*(float(v) for v in m.n_cells), float(m.fudge), m.lattice.reciprocal.numpy())
    shape, form = _lattice_code(physics)
    form_params = np.ascontiguousarray(np.concatenate(  # a compiled form's params (nbsim.plugins.compiled_forms)
        (m.n_cells.numpy(), [float(m.fudge)], m.lattice.reciprocal.numpy().reshape(-1))), dtype=np.float64)
    assert form_params.shape == (LATTICE_PARAMS,)
    sf = (grid, lo, hi, gshape, float(m.default_F))
    sf32 = (grid.astype(np.float32), lo, hi, gshape, np.float32(m.default_F))
    weights = m.sources.intensity_weights  # None: the loop takes no product by a weight (an empty array)
    sources = (m.sources.directions.numpy(), m.sources.wavelengths.numpy(),
               np.zeros(0) if weights is None else weights.numpy(), cfg.sampling.dmin)
    inputs = (
        *_polarization_code(physics), np.ascontiguousarray(np.concatenate(([float(m.kahn)], m.polar_vector.numpy()))),
        float(m.kahn),
        m.polar_vector.numpy(), b.nopolar,
        tables, variant_first, order.block_of_row.numpy(), order.block_first.numpy(), m.passes_per_pixel,
        shape, lattice, form, form_params, sf, constant_F, precision, refs,
        deltas, source_mean, source_offsets, sf32, float(R_E_SQR * m.fluence / m.steps), float(m.I_bg),
        cfg.sampling.oversample_thick, cfg.sampling.oversample_polar, cfg.sampling.oversample_omega,
        cfg.beam.water_size != 0.0, c.interpolate and not constant_F,
    )

    first_call = [True]  # whether the loop must be compiled is considered once, before the first chunk

    pixels_per_panel = m.panels.spixels * m.panels.fpixels
    keys_per_pixel = m.passes_per_pixel * tables.shape[2]  # evaluations in loop order (interpolation)
    interpolate = inputs[-1]

    def call(idx: np.ndarray, panel: int, switch_key: int) -> tuple:
        args = (idx, d.fpixels, panel * m.panels.spixels, *geos[panel], d.curved, d.point_pixel, m.oversample,
                m.thicksteps, *sources, *inputs, switch_key)
        if first_call.pop() if first_call else False:
            if jit.will_compile(compiled_loop.render_pixels, args):
                if notice is not None:
                    notice(COMPILE_NOTICE)
                compile_apart()
        return compiled_loop.render_pixels(*args)

    def render(idx: torch.Tensor, interpolating: bool) -> tuple:
        """Values (P,), solid-angle sums (P,) and the interpolation switch, if one happens here."""
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        idx = idx.numpy()
        values, omegas, switch = [], [], None
        interpolating = interpolate and interpolating
        # the loop renders one panel at a time: split the chunk (raster order) at panel boundaries
        bounds = np.searchsorted(idx, np.arange(m.panels.count + 1) * pixels_per_panel)
        for k in np.flatnonzero(bounds[1:] > bounds[:-1]):
            part = idx[bounds[k]:bounds[k + 1]]
            v, om, flag_keys, flag_hkls = call(part, k, compiled_loop.ALWAYS if interpolating else compiled_loop.NEVER)
            if interpolating and flag_keys.min() != compiled_loop.ALWAYS:
                # interpolation ends at that evaluation: its pixel again, switching there, and
                # every later pixel with nearest-neighbour F
                block = int(flag_keys.argmin())
                key, (h, kk, l) = int(flag_keys[block]), flag_hkls[block].tolist()
                pixel = key // keys_per_pixel
                at = int(np.searchsorted(part, pixel))
                v[at:], om[at:] = call(part[at:], k, key)[:2]
                switch = InterpolationSwitch(hkl=(h, kk, l, *(int(np.ceil(x - 0.5)) for x in (h, kk, l))), pixel=pixel)
                interpolating = False
            values.append(v)
            omegas.append(om)
        if len(values) == 1:
            return torch.from_numpy(values[0]), torch.from_numpy(omegas[0]), switch
        return torch.from_numpy(np.concatenate(values)), torch.from_numpy(np.concatenate(omegas)), switch

    return render
