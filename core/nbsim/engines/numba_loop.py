"""Compiled (numba) render loop for the CPU: the common case, without gradients.

The same physics as :mod:`nbsim.engines.tensor_kernel` for lattice factors with a compiled form
(:mod:`nbsim.plugins.compiled_forms`; the built-in shapes' forms inlined, from
:mod:`nbsim.plugins.builtins.lattice_forms`) and the built-in polarization models, in the reference
program's pass order (layers, sub-pixels, sources, orientations) and compiled with numba.
Pixels are taken in blocks, one parallel work item each, and every inner loop runs over the
block's pixels, so that it vectorises whatever the numbers of sources and orientations.
In single precision only a small correction to a double-precision reference index is
single precision (:func:`_near_pass`).  Imported only when numba is available;
:mod:`nbsim.engines.numba_engine` decides when it applies and prepares its inputs.
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, njit, prange

from nbsim.physics import jit
from nbsim.physics import pass_quantities as pq
from nbsim.plugins.builtins.lattice_forms import SQUARE
from nbsim.plugins.builtins.lattice_forms import lattice_factor as _latt
from nbsim.plugins.builtins.polarization_forms import polarization_factor as _polarization
from nbsim.plugins.compiled_forms import lattice_signature, polarization_signature

jit.numba()  # before anything is compiled: the cache's place, and the shared formulas (nbsim.physics.dual_math)

#: FORM: F_latt from a lattice factor's compiled form (nbsim.plugins.compiled_forms), called through
#: its pointer; the built-in shapes' forms are inlined instead (their codes, lattice_forms.INLINE)
FORM = 4
#: how the lattice sums are taken: in double precision, or in single precision near a
#: double-precision reference (see :func:`_near_pass`)
DOUBLE, NEAR = 0, 1
#: pixels per parallel work item: the inner loops run over them (vectorised), so per-pass
#: work and call overheads are shared by the block
PIXEL_BLOCK = 128
#: a polarization model's compiled form called through its pointer (the built-ins' are inlined)
POLAR_FORM = 2

_F32 = np.float32
#: sin(π r)/r for |r| <= 1/2 as a polynomial in r^2: a degree-9 minimax fit, relative error 4e-8
#: with the coefficients in single precision, below single-precision rounding
_S1, _S3, _S5, _S7, _S9 = (_F32(3.1415927410125732), _F32(-5.167709827423096), _F32(2.550069808959961),
                           _F32(-0.5982421040534973), _F32(0.07756038010120392))


@njit(inline="always", fastmath={"contract"})
def _sinpi_reduced(x):
    """(sin(π r), k) for x = k + r, k = rint(x), in single precision."""
    k = np.rint(x)  # np.round would promote to double
    r = x - k
    r2 = r * r
    p = (((_S9 * r2 + _S7) * r2 + _S5) * r2 + _S3) * r2 + _S1
    return r * p, k


@njit(inline="always", fastmath={"contract"})
def _sincg_near(x, parity, n):
    """sin(π N h)/sin(π h) in single precision at h = j + x (N whole; ``parity`` of j + N j).

    Both sines carry the sign (-1)^k of their whole part k, so the ratio carries their product;
    at integer h both vanish and the ratio's limit is N times that sign.
    """
    den, kd = _sinpi_reduced(x)
    num, kn = _sinpi_reduced(n * x)
    half = (kd + kn + parity) * _F32(0.5)
    sign = _F32(1.0) - _F32(4.0) * (half - np.floor(half))
    return sign * (num / den if den != _F32(0.0) else n)


@njit(inline="always")
def _parity(j):
    half = j * 0.5
    return _F32(2.0 * (half - np.floor(half)))


@njit(inline="always", fastmath={"contract"})
def _lookup(h0, k0, l0, sf):
    """F_cell at the integer indices (h0, k0, l0); ``sf`` = (grid, lo, hi, shape, default_F)."""
    grid, lo, hi, gshape, default_F = sf
    inside = lo[0] <= h0 <= hi[0] and lo[1] <= k0 <= hi[1] and lo[2] <= l0 <= hi[2]
    flat = ((int(h0) - lo[0]) * gshape[1] + (int(k0) - lo[1])) * gshape[2] + (int(l0) - lo[2])
    return grid[flat] if inside else default_F


@njit(inline="always", fastmath={"contract"})
def _with_F_cell(F, constant_F, h, k, l, sf):
    """F_latt^2, times F_cell^2 unless constant (the constant one is applied by the caller)."""
    if constant_F:
        term = F * F
    else:
        Fc = _lookup(np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5), sf)
        term = Fc * Fc * F * F
    return term


@njit(inline="always", fastmath={"contract"})
def _term(shape, constant_F, h, k, l, lattice, sf):
    """F_latt^2 (times F_cell^2 unless constant) at fractional indices (h, k, l)."""
    return _with_F_cell(_latt(shape, h, k, l, lattice), constant_F, h, k, l, sf)


@njit(inline="always", fastmath={"contract"})
def _running_step(I, F, constant_F, scaled, scale, h, k, l, sf, water, g):
    """The reference's running product (-oversample_thick/_polar/_omega): the running sum takes
    the term (times ``scale`` where ``scaled``: default_F^2 with constant F, times the source's
    intensity weight where it has one) and is multiplied by the pass's factor ``g``, unless
    F_latt is exactly 0 (no water), where the reference skips the evaluation."""
    if F == 0.0 and not water:
        return I
    term = _with_F_cell(F, constant_F, h, k, l, sf)
    return (I + (term * scale if scaled else term)) * g


@njit(fastmath={"contract"})
def _running_pass(shape, constant_F, scaled, scale, t, S, count, I, g, alive, lattice, sf, water):
    """I[q] through the running product of every orientation of ``t`` for the first ``count``
    pixels that survive the -dmin cut, in the reference's order (``scaled``, ``scale``: :func:`_running_step`).

    The square shape with constant F gets its own loop (constants folded, no branches).
    """
    if shape == SQUARE and constant_F:  # constant F: always scaled
        _running_pass_loop(SQUARE, True, True, scale, t, S, count, I, g, alive, lattice, sf, water)
    else:
        _running_pass_loop(shape, constant_F, scaled, scale, t, S, count, I, g, alive, lattice, sf, water)


@njit(inline="always", fastmath={"contract"})
def _running_pass_loop(shape, constant_F, scaled, scale, t, S, count, I, g, alive, lattice, sf, water):
    for r in range(t.shape[1]):
        t0, t1, t2, t3, t4, t5, t6, t7, t8 = t[0, r], t[1, r], t[2, r], t[3, r], t[4, r], t[5, r], t[6, r], t[7, r], t[8, r]
        for q in range(count):
            h = t0 * S[0, q] + t1 * S[1, q] + t2 * S[2, q]
            k = t3 * S[0, q] + t4 * S[1, q] + t5 * S[2, q]
            l = t6 * S[0, q] + t7 * S[1, q] + t8 * S[2, q]
            stepped = _running_step(I[q], _latt(shape, h, k, l, lattice), constant_F, scaled, scale, h, k, l, sf,
                                    water, g[q])
            I[q] = stepped if alive[q] != 0.0 else I[q]


@njit(fastmath={"contract"})
def _running_orientations(shape, constant_F, scaled, scale, t, Sx, Sy, Sz, I, g, lattice, sf, water):
    """One pixel's running sum ``I`` through the orientations ``t`` (9, R) at one scattering vector."""
    for r in range(t.shape[1]):
        h = t[0, r] * Sx + t[1, r] * Sy + t[2, r] * Sz
        k = t[3, r] * Sx + t[4, r] * Sy + t[5, r] * Sz
        l = t[6, r] * Sx + t[7, r] * Sy + t[8, r] * Sz
        I = _running_step(I, _latt(shape, h, k, l, lattice), constant_F, scaled, scale, h, k, l, sf, water, g)
    return I


@cfunc(lattice_signature(), cache=True)
def no_form(hkl, n, params, out):
    """The form argument of renders whose lattice factor is a built-in shape (never called)."""
    values = carray(out, (n,))
    for i in range(n):
        values[i] = 0.0


@njit(inline="always", fastmath={"contract"})
def _form_terms(form, params, constant_F, hkl, n, F, acc, sf):
    """acc[q] += F_latt^2 (times F_cell^2 unless constant) of the ``n`` indices in ``hkl``
    (h[0:n], k[0:n], l[0:n]), F_latt from the compiled ``form``."""
    form(hkl.ctypes, n, params.ctypes, F.ctypes)
    for q in range(n):
        term = F[q] * F[q]
        if not constant_F:
            Fc = _lookup(np.ceil(hkl[q] - 0.5), np.ceil(hkl[n + q] - 0.5), np.ceil(hkl[2 * n + q] - 0.5), sf)
            term *= Fc * Fc
        acc[q] += term


@njit(inline="always", fastmath={"contract"})
def _block_indices(t, r, S, count, hkl):
    """Miller indices of orientation ``r`` of ``t`` for the block's first ``count`` scattering
    vectors, laid out as a compiled form takes them: h[0:count], k[...], l[...]."""
    for q in range(count):
        hkl[q] = t[0, r] * S[0, q] + t[1, r] * S[1, q] + t[2, r] * S[2, q]
        hkl[count + q] = t[3, r] * S[0, q] + t[4, r] * S[1, q] + t[5, r] * S[2, q]
        hkl[2 * count + q] = t[6, r] * S[0, q] + t[7, r] * S[1, q] + t[8, r] * S[2, q]


@njit(inline="always", fastmath={"contract"})
def _orientation_indices(t, Sx, Sy, Sz):
    """Miller indices of every orientation of ``t`` (9, R) at one scattering vector, laid out as
    a compiled form takes them: h[0:R], k[...], l[...]."""
    R = t.shape[1]
    hkl = np.empty(3 * R)
    for r in range(R):
        hkl[r] = t[0, r] * Sx + t[1, r] * Sy + t[2, r] * Sz
        hkl[R + r] = t[3, r] * Sx + t[4, r] * Sy + t[5, r] * Sz
        hkl[2 * R + r] = t[6, r] * Sx + t[7, r] * Sy + t[8, r] * Sz
    return hkl


@njit(fastmath={"reassoc", "contract"})
def _form_pass(form, params, constant_F, t, S, count, acc, sf, hkl, F):
    """acc[q] = Σ_r term at h = t[:, r]·S[:, q] for the first ``count`` pixels, F_latt from the
    lattice factor's compiled ``form``, one call per orientation for the block."""
    for q in range(count):
        acc[q] = 0.0
    for r in range(t.shape[1]):
        _block_indices(t, r, S, count, hkl)
        _form_terms(form, params, constant_F, hkl, count, F, acc, sf)


@njit(fastmath={"contract"})
def _form_running_pass(form, params, constant_F, scaled, scale, t, S, count, I, g, alive, sf, water, hkl, F):
    """:func:`_running_pass` with F_latt from the lattice factor's compiled ``form``."""
    for r in range(t.shape[1]):
        _block_indices(t, r, S, count, hkl)
        form(hkl.ctypes, count, params.ctypes, F.ctypes)
        for q in range(count):
            stepped = _running_step(I[q], F[q], constant_F, scaled, scale, hkl[q], hkl[count + q], hkl[2 * count + q],
                                    sf, water, g[q])
            I[q] = stepped if alive[q] != 0.0 else I[q]


@njit(fastmath={"contract"})
def _form_running_orientations(form, params, constant_F, scaled, scale, t, Sx, Sy, Sz, I, g, sf, water):
    """:func:`_running_orientations` with F_latt from the compiled ``form``."""
    R = t.shape[1]
    hkl = _orientation_indices(t, Sx, Sy, Sz)
    F = np.empty(R)
    form(hkl.ctypes, R, params.ctypes, F.ctypes)
    for r in range(R):
        I = _running_step(I, F[r], constant_F, scaled, scale, hkl[r], hkl[R + r], hkl[2 * R + r], sf, water, g)
    return I


@njit(fastmath={"reassoc", "contract"})
def _form_orientation_sum(form, params, constant_F, t, Sx, Sy, Sz, sf):
    """Σ over the orientations ``t`` (9, R) at one scattering vector, F_latt from ``form``."""
    R = t.shape[1]
    hkl = _orientation_indices(t, Sx, Sy, Sz)
    terms = np.zeros(R)
    _form_terms(form, params, constant_F, hkl, R, np.empty(R), terms, sf)
    total = 0.0
    for r in range(R):
        total += terms[r]
    return total


@njit(fastmath={"reassoc", "contract"})
def _orientation_sum(shape, constant_F, t, Sx, Sy, Sz, lattice, sf):
    """Σ over the orientations ``t`` (9, R) at one scattering vector (rows a, b, c per column)."""
    total = 0.0
    for r in range(t.shape[1]):
        h = t[0, r] * Sx + t[1, r] * Sy + t[2, r] * Sz
        k = t[3, r] * Sx + t[4, r] * Sy + t[5, r] * Sz
        l = t[6, r] * Sx + t[7, r] * Sy + t[8, r] * Sz
        total += _term(shape, constant_F, h, k, l, lattice, sf)
    return total


@njit(inline="always", fastmath={"reassoc", "contract"})
def _double_pass_loop(shape, constant_F, t, S, count, acc, lattice, sf):
    for q in range(count):
        acc[q] = 0.0
    for r in range(t.shape[1]):
        t0, t1, t2, t3, t4, t5, t6, t7, t8 = t[0, r], t[1, r], t[2, r], t[3, r], t[4, r], t[5, r], t[6, r], t[7, r], t[8, r]
        for q in range(count):  # from 0: indices provably non-negative, so loads stay contiguous
            h = t0 * S[0, q] + t1 * S[1, q] + t2 * S[2, q]
            k = t3 * S[0, q] + t4 * S[1, q] + t5 * S[2, q]
            l = t6 * S[0, q] + t7 * S[1, q] + t8 * S[2, q]
            acc[q] += _term(shape, constant_F, h, k, l, lattice, sf)


@njit(fastmath={"reassoc", "contract"})
def _double_pass(shape, constant_F, t, S, count, acc, lattice, sf):
    """acc[q] = Σ_r term at h = t[:, r]·S[:, q] for the first ``count`` pixels, in double precision.

    The square shape with constant F gets its own loop (constants folded, no branches).
    """
    if shape == SQUARE and constant_F:
        _double_pass_loop(SQUARE, True, t, S, count, acc, lattice, sf)
    else:
        _double_pass_loop(shape, constant_F, t, S, count, acc, lattice, sf)


@njit(inline="always", fastmath={"reassoc", "contract"})
def _near_term(constant_F, h, k, l, x, jg, q, n, sf32):
    F = _sincg_near(h, x[3, q], n[0]) * _sincg_near(k, x[4, q], n[1]) * _sincg_near(l, x[5, q], n[2])
    if not constant_F:
        half = _F32(0.5)
        F *= _lookup(jg[0, q] + np.ceil(h - half), jg[1, q] + np.ceil(k - half), jg[2, q] + np.ceil(l - half), sf32)
    return F * F


@njit(inline="always", fastmath={"reassoc", "contract"})
def _near_pass_loop(constant_F, deltas, split, j, S32, ew, offsets, count, y, acc, n, sf32):
    for q in range(count):
        acc[q] = _F32(0.0)
    for g in range(deltas.shape[0]):
        x, jg = split[g], j[g]
        c0, c1, c2 = offsets[g, 0], offsets[g, 1], offsets[g, 2]
        if deltas.shape[2] == 1:  # the group's one orientation is its reference
            for q in range(count):
                h = x[0, q] + (x[6, q] * ew + c0)
                k = x[1, q] + (x[7, q] * ew + c1)
                l = x[2, q] + (x[8, q] * ew + c2)
                acc[q] += _near_term(constant_F, h, k, l, x, jg, q, n, sf32)
            continue
        for q in range(count):
            y[0, q] = x[0, q] + (x[6, q] * ew + c0)
            y[1, q] = x[1, q] + (x[7, q] * ew + c1)
            y[2, q] = x[2, q] + (x[8, q] * ew + c2)
        d = deltas[g]
        for m in range(d.shape[1]):
            d0, d1, d2, d3, d4, d5, d6, d7, d8 = d[0, m], d[1, m], d[2, m], d[3, m], d[4, m], d[5, m], d[6, m], d[7, m], d[8, m]
            for q in range(count):
                h = y[0, q] + (d0 * S32[0, q] + d1 * S32[1, q] + d2 * S32[2, q])
                k = y[1, q] + (d3 * S32[0, q] + d4 * S32[1, q] + d5 * S32[2, q])
                l = y[2, q] + (d6 * S32[0, q] + d7 * S32[1, q] + d8 * S32[2, q])
                acc[q] += _near_term(constant_F, h, k, l, x, jg, q, n, sf32)


@njit(fastmath={"reassoc", "contract"})
def _near_pass(constant_F, deltas, split, j, S32, ew, offsets, count, y, acc, n, sf32):
    """acc[q] = Σ over orientations of F_latt^2 (F_cell^2) in single precision near a reference.

    h = j + x + t̄_g·δS_q + Δ_m·S_q for orientation m of group g (see :func:`_split_references`):
    with δS_q = S_q - S̄_q = d_q (1/λ - mean 1/λ) + (src/λ - mean src/λ) the source's offset
    from the mean source, t̄_g·δS_q = u_q ``ew`` + ``offsets``[g] (G, 3); S_q (``S32`` (3, B),
    needed only where a group has several orientations) the scattering vector and Δ_m = t_m - t̄_g
    the orientation's offset from its group's reference, ``deltas`` (G, 9, M).  Only the small
    remainder is single precision, so h keeps double accuracy where it matters.
    """
    if constant_F:  # its own loop, without the lookup's branches
        _near_pass_loop(True, deltas, split, j, S32, ew, offsets, count, y, acc, n, sf32)
    else:
        _near_pass_loop(False, deltas, split, j, S32, ew, offsets, count, y, acc, n, sf32)


@njit(fastmath={"reassoc", "contract"})
def _split_references(refs, d, Sb, count, n, split, j):
    """Split h = t̄_g·S̄_q into j + x for every group reference g and pixel q, in double precision.

    ``split`` (G, 9, B) gets x, the parity of j + N j and u = t̄_g·d_q (d the unit diffracted
    direction) per axis, ``j`` (G, 3, B) j.
    """
    for g in range(refs.shape[0]):
        for a in range(3):
            t0, t1, t2, na = refs[g, 3 * a], refs[g, 3 * a + 1], refs[g, 3 * a + 2], n[a]
            jg, x, parity, u = j[g, a], split[g, a], split[g, 3 + a], split[g, 6 + a]
            for q in range(count):
                h = t0 * Sb[0, q] + t1 * Sb[1, q] + t2 * Sb[2, q]
                jh = np.rint(h)
                jg[q] = jh
                x[q] = _F32(h - jh)
                parity[q] = _parity(jh + jh * na)
                u[q] = _F32(t0 * d[0, q] + t1 * d[1, q] + t2 * d[2, q])


#: interpolation switch keys: no evaluation interpolates (NEVER), or every one does (ALWAYS)
NEVER, ALWAYS = -1, np.iinfo(np.int64).max


@njit(inline="always")
def _polint4(x0, y0, y1, y2, y3, t):
    """The Lagrange polynomial through (x0 + i, y_i), i = 0..3, at t, in the reference's
    operation order (``nbsim.engines.interpolation._polint``)."""
    x1, x2, x3 = x0 + 1.0, x0 + 2.0, x0 + 3.0
    l0 = (t - x1) * (t - x2) * (t - x3) * y0 / ((x0 - x1) * (x0 - x2) * (x0 - x3))
    l1 = (t - x0) * (t - x2) * (t - x3) * y1 / ((x1 - x0) * (x1 - x2) * (x1 - x3))
    l2 = (t - x0) * (t - x1) * (t - x3) * y2 / ((x2 - x0) * (x2 - x1) * (x2 - x3))
    l3 = (t - x0) * (t - x1) * (t - x2) * y3 / ((x3 - x0) * (x3 - x1) * (x3 - x2))
    return l0 + l1 + l2 + l3


@njit(inline="always")
def _clamped(node, lo, size):
    rel = int(node) - lo
    return min(max(rel, 0), size - 1)


@njit(inline="always")
def _along_l(grid, gshape, ih, ik, lo_l, nl, l):
    """F interpolated along l at grid row (ih, ik), nodes nl .. nl + 3."""
    row = (ih * gshape[1] + ik) * gshape[2]
    y0 = grid[row + _clamped(nl, lo_l, gshape[2])]
    y1 = grid[row + _clamped(nl + 1.0, lo_l, gshape[2])]
    y2 = grid[row + _clamped(nl + 2.0, lo_l, gshape[2])]
    y3 = grid[row + _clamped(nl + 3.0, lo_l, gshape[2])]
    return _polint4(nl, y0, y1, y2, y3, l)


@njit(inline="always")
def _along_k(grid, gshape, lo, ih, nk, nl, k, l):
    ik0, ik1 = _clamped(nk, lo[1], gshape[1]), _clamped(nk + 1.0, lo[1], gshape[1])
    ik2, ik3 = _clamped(nk + 2.0, lo[1], gshape[1]), _clamped(nk + 3.0, lo[1], gshape[1])
    return _polint4(nk, _along_l(grid, gshape, ih, ik0, lo[2], nl, l), _along_l(grid, gshape, ih, ik1, lo[2], nl, l),
                    _along_l(grid, gshape, ih, ik2, lo[2], nl, l), _along_l(grid, gshape, ih, ik3, lo[2], nl, l), k)


@njit
def _tricubic(h, k, l, sf):
    """Tricubic F at (h, k, l) through the grid at floor - 1 .. floor + 2 (clamped to the grid),
    along l, then k, then h (``nbsim.engines.interpolation.tricubic``)."""
    grid, lo, hi, gshape, default_F = sf
    nh, nk, nl = np.floor(h) - 1.0, np.floor(k) - 1.0, np.floor(l) - 1.0
    v0 = _along_k(grid, gshape, lo, _clamped(nh, lo[0], gshape[0]), nk, nl, k, l)
    v1 = _along_k(grid, gshape, lo, _clamped(nh + 1.0, lo[0], gshape[0]), nk, nl, k, l)
    v2 = _along_k(grid, gshape, lo, _clamped(nh + 2.0, lo[0], gshape[0]), nk, nl, k, l)
    v3 = _along_k(grid, gshape, lo, _clamped(nh + 3.0, lo[0], gshape[0]), nk, nl, k, l)
    return _polint4(nh, v0, v1, v2, v3, h)


@njit(inline="always")
def _out_of_range(h, k, l, sf):
    """Whether the interpolation nodes of (h, k, l) leave the grid (``nbsim.engines.interpolation.out_of_range``)."""
    grid, lo, hi, gshape, default_F = sf
    return (h - lo[0] + 3 > hi[0] - lo[0] + 1 or h - 2 < lo[0] or k - lo[1] + 3 > hi[1] - lo[1] + 1 or k - 2 < lo[1]
            or l - lo[2] + 3 > hi[2] - lo[2] + 1 or l - 2 < lo[2])


@njit(inline="always")
def _interpolated_term(F, h, k, l, key, switch_key, alive, water, sf, flag_key, flag_hkl):
    """F_cell^2 F_latt^2 of one evaluation, F_cell tricubic while ``key`` < ``switch_key``, else
    nearest; a reached evaluation (F_latt non-zero or water, pass not cut) whose nodes leave
    the grid is recorded in ``flag_key``/``flag_hkl`` when it comes first in loop order."""
    term = 0.0
    if F != 0.0 or water:
        if alive and key < flag_key[0] and _out_of_range(h, k, l, sf):
            flag_key[0] = key
            flag_hkl[0], flag_hkl[1], flag_hkl[2] = h, k, l
        if key < switch_key:
            Fc = _tricubic(h, k, l, sf)
        else:
            Fc = _lookup(np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5), sf)
        term = Fc * Fc * F * F
    return term


@njit(fastmath={"contract"})
def _interpolated_pass(shape, form, form_params, t, S, count, acc, lattice, sf, water, alive, keys, switch_key,
                       flag_key, flag_hkl, hkl, F):
    """acc[q] = Σ_r F_cell^2 F_latt^2 with tricubic F_cell (:func:`_interpolated_term`); evaluation
    r of pixel q has key ``keys[q] + r``; F_latt of a built-in ``shape`` or the compiled ``form``."""
    for q in range(count):
        acc[q] = 0.0
    for r in range(t.shape[1]):
        _block_indices(t, r, S, count, hkl)
        if shape == FORM:
            form(hkl.ctypes, count, form_params.ctypes, F.ctypes)
        else:
            for q in range(count):
                F[q] = _latt(shape, hkl[q], hkl[count + q], hkl[2 * count + q], lattice)
        for q in range(count):
            acc[q] += _interpolated_term(F[q], hkl[q], hkl[count + q], hkl[2 * count + q], keys[q] + r, switch_key,
                                         alive[q] != 0.0, water, sf, flag_key, flag_hkl)


@njit(fastmath={"contract"})
def _interpolated_orientations(shape, form, form_params, t, Sx, Sy, Sz, lattice, sf, water, alive, key, switch_key,
                               flag_key, flag_hkl):
    """:func:`_interpolated_pass` for one pixel's pass over the orientations ``t`` (9, R)."""
    R = t.shape[1]
    hkl = _orientation_indices(t, Sx, Sy, Sz)
    F = np.empty(R)
    if shape == FORM:
        form(hkl.ctypes, R, form_params.ctypes, F.ctypes)
    else:
        for r in range(R):
            F[r] = _latt(shape, hkl[r], hkl[R + r], hkl[2 * R + r], lattice)
    total = 0.0
    for r in range(R):
        total += _interpolated_term(F[r], hkl[r], hkl[R + r], hkl[2 * R + r], key + r, switch_key, alive, water, sf,
                                    flag_key, flag_hkl)
    return total


@cfunc(polarization_signature(), cache=True)
def no_polar_form(incident, diffracted, n, params, out):
    """The form argument of renders whose polarization model the loop inlines (never called)."""
    values = carray(out, (n,))
    for i in range(n):
        values[i] = 1.0


@njit
def _form_polarization(form, params, ix, iy, iz, d, count, incident, dirs, out):
    """out[0:count] = the compiled ``form``'s factors for incident (ix, iy, iz) and the block's
    diffracted directions ``d`` (3, B)."""
    incident[0], incident[1], incident[2] = ix, iy, iz
    for a in range(3):
        for q in range(count):
            dirs[a * count + q] = d[a, q]
    form(incident.ctypes, dirs.ctypes, count, params.ctypes, out.ctypes)


@njit(fastmath={"contract"})
def _running_source(shape, constant_F, scaled, scale, tables, variant_first, S, count, I, g, before, alive,
                    special, ordinal, capture, polar, omega, oversample_thick, oversample_polar, oversample_omega,
                    lattice, form, form_params, sf, water, form_hkl, form_F):
    """One source's terms as running products for a block: each pass's factor ``g`` (capture,
    polarization, solid angle, as the flags ask), then every orientation, each term times
    ``scale`` where ``scaled`` (:func:`_running_step`); a row block's first pass (c-parity) with
    its own tables.  Kept out of :func:`render_pixels`, whose loop then compiles as it does
    without running products."""
    for q in range(count):
        factor = 1.0
        if oversample_thick:
            factor *= capture[q]
        if oversample_polar:
            factor *= polar[q]
        if oversample_omega:
            factor *= omega[q]
        g[q] = factor
    if variant_first != 0:
        for q in range(count):
            before[q] = I[q]
    if shape == FORM:
        _form_running_pass(form, form_params, constant_F, scaled, scale, tables[0], S, count, I, g, alive, sf, water,
                           form_hkl, form_F)
    else:
        _running_pass(shape, constant_F, scaled, scale, tables[0], S, count, I, g, alive, lattice, sf, water)
    if variant_first != 0:
        for q in range(count):
            if special[q] == ordinal and alive[q] != 0.0:
                Sx, Sy, Sz = S[0, q], S[1, q], S[2, q]  # the pass's own scattering vector (in double precision)
                if shape == FORM:
                    I[q] = _form_running_orientations(form, form_params, constant_F, scaled, scale,
                                                      tables[variant_first], Sx, Sy, Sz, before[q], g[q], sf, water)
                else:
                    I[q] = _running_orientations(shape, constant_F, scaled, scale, tables[variant_first], Sx, Sy, Sz,
                                                 before[q], g[q], lattice, sf, water)


@njit(inline="always")
def _slab(blocks, used, width):
    """Per-block rows of scratch, (blocks, width) where ``used``, else one unused (1, 1)."""
    return np.empty((blocks if used else 1, width if used else 1))


@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def render_pixels(idx, fpixels, row0, geo, thickstep, mu, thick, curved, point_pixel, n, layers,
                  src_dir, src_lambda, src_weight, dmin, polar_mode, polar_form, polar_params, kahn, polar_axis,
                  nopolar,
                  tables, variant_first, block_of_row, block_first, passes_per_pixel,
                  shape, lattice, form, form_params, sf, constant_F, precision, refs, deltas, source_mean,
                  source_offsets, sf32, prefactor, I_bg, oversample_thick, oversample_polar, oversample_omega,
                  water, interpolate, switch_key):
    """Values (P,) and solid-angle sums (P,) of the pixels ``idx`` (flat indices, nbsim.model.panels)
    of one panel, whose first row is ``row0`` of all panels' rows.

    ``geo`` (6, 4) = rows origin, fast, slow, normal, beam (x, y, z, 0), then (pixel size,
    sub-pixel size, distance, close distance) of the panel; ``thickstep``, ``mu``, ``thick`` its
    sensor's layer thickness, attenuation and thickness; ``src_dir`` (S, 3), ``src_lambda`` (S,) the
    sources, ``src_weight`` (S,) their intensity weights (a spectrum's, nbsim.model.sources), or
    empty: every source 1, and no product by a weight is taken; ``tables`` (V, 9, R) lattice vectors (rows a, b,
    c) of each orientation, variant 0 for every pass but a row block's first executed pass,
    which uses ``variant_first`` (that pass is evaluated on its own, in double precision).
    ``shape`` a built-in shape, or FORM: F_latt from the lattice factor's compiled ``form`` with
    ``form_params`` (nbsim.plugins.compiled_forms; ``no_form`` otherwise).
    ``precision`` DOUBLE, or NEAR with ``refs`` (G, 9), ``deltas`` (G, 9, M) and
    ``source_mean`` (4,) = (Σ src/λ, Σ 1/λ)/S and ``source_offsets`` (S, G, 3) =
    t̄_g·(src/λ - mean src/λ) per source, as :func:`_near_pass` describes.

    With ``oversample_thick/_polar/_omega`` the factor is taken per sub-pixel (and source) and
    multiplies the running sum after every term, as the reference does (:func:`_running_step`;
    ``water``: no evaluation is skipped); the sums are then in double precision.

    With ``interpolate`` (double precision, no running products), F_cell is tricubic for every
    evaluation before ``switch_key`` in loop order (key (pixel * passes + pass) * R + r) and
    nearest from there on (NEVER, ALWAYS); the first reached evaluation whose nodes leave the
    grid is returned per pixel block, as (key, h, k, l), ALWAYS where there is none: the
    caller renders again from its pixel on, with that key (the reference switches there).

    Pixels are processed in blocks of PIXEL_BLOCK, every inner loop running over the block.
    Returns values, solid-angle sums, and the blocks' first out-of-range keys and indices.
    """
    P = idx.shape[0]
    n_sources = src_dir.shape[0]
    weighted = src_weight.shape[0] != 0
    B = PIXEL_BLOCK
    G = refs.shape[0]
    inv_lambda = 1.0 / src_lambda
    values = np.empty(P)
    omegas = np.empty(P)
    n_blocks = (P + B - 1) // B
    flag_keys = np.full(n_blocks, ALWAYS, dtype=np.int64)
    flag_hkls = np.zeros((n_blocks, 3))
    R = tables.shape[2]
    running = oversample_thick or oversample_polar or oversample_omega
    by_indices = shape == FORM or interpolate
    by_form = polar_mode == POLAR_FORM
    g_slab, before_slab = _slab(n_blocks, running, B), _slab(n_blocks, running, B)
    hkl_slab, F_slab = _slab(n_blocks, by_indices, 3 * B), _slab(n_blocks, by_indices, B)
    incident_slab, dirs_slab = _slab(n_blocks, by_form, 3), _slab(n_blocks, by_form, 3 * B)
    formed_slab = _slab(n_blocks, by_form, B)
    keys_slab = np.empty((n_blocks if interpolate else 1, B if interpolate else 1), dtype=np.int64)
    counted_slab = _slab(n_blocks, interpolate, B)
    origin, fast, slow = (geo[0, 0], geo[0, 1], geo[0, 2]), (geo[1, 0], geo[1, 1], geo[1, 2]), (geo[2, 0], geo[2, 1], geo[2, 2])
    normal, beam = (geo[3, 0], geo[3, 1], geo[3, 2]), (geo[4, 0], geo[4, 1], geo[4, 2])
    pixel, subpixel, distance, close = geo[5, 0], geo[5, 1], geo[5, 2], geo[5, 3]
    n_cells = (lattice[0], lattice[1], lattice[2])
    n32 = (_F32(lattice[0]), _F32(lattice[1]), _F32(lattice[2]))
    F2 = sf[4] * sf[4]
    base_tables = tables[0]
    for blk in prange(n_blocks):
        first_pixel = blk * B
        count = min(B, P - first_pixel)
        if interpolate and switch_key == ALWAYS and idx[first_pixel] * passes_per_pixel * R > flag_keys.min():
            # after an out-of-range evaluation another block has found: the caller renders this
            # block again (read while other blocks write: a stale value only skips less)
            for q in range(count):
                values[first_pixel + q] = 0.0
                omegas[first_pixel + q] = 0.0
            continue
        fpix = np.empty(B)
        spix = np.empty(B)
        special = np.empty(B, dtype=np.int64)  # each pixel's pass that uses variant_first
        I = np.full(B, I_bg)
        omega = np.zeros(B)
        omega_sum = np.zeros(B)
        polar = np.full(B, 1.0 if nopolar else 0.0)
        polar_pending = not nopolar
        capture = np.ones(B)
        pos = np.empty((3, B))  # sub-pixel positions
        d = np.empty((3, B))  # unit diffracted directions
        S = np.empty((3, B))  # scattering vectors of the current source
        alive = np.ones(B)  # only -dmin clears it
        acc = np.empty(B)
        # scratch of the running products, compiled forms and interpolation: rows of slabs made
        # once per call, full size only where used (an allocation per block costs: all of a
        # block's together measured 10-15% of a plain render)
        block = first_pixel // B  # blk itself is unsigned in the parallel loop: mixed with 0 it types as a float
        g = g_slab[block if running else 0]  # what a pass multiplies the running sum by
        before = before_slab[block if running else 0]  # a first pass's running sum, before the shared tables took it
        form_hkl = hkl_slab[block if by_indices else 0]  # Miller indices and F_latt, laid out as a compiled
        form_F = F_slab[block if by_indices else 0]  # form takes them
        polar_scratch = (incident_slab[block if by_form else 0], dirs_slab[block if by_form else 0],
                         formed_slab[block if by_form else 0])
        keys = keys_slab[block if interpolate else 0]  # each pixel's first key of the pass
        counted = counted_slab[block if interpolate else 0]  # passes whose shared-table evaluations count
        flag_key = flag_keys[blk:blk + 1]
        flag_hkl = flag_hkls[blk]
        Sb = np.empty((3, B))  # scattering vectors of the mean source
        # single-precision scratch (NEAR)
        S32 = np.empty((3, B), dtype=np.float32)
        acc32 = np.empty(B, dtype=np.float32)
        y = np.empty((3, B), dtype=np.float32)
        split = np.empty((G, 9, B), dtype=np.float32)
        j_ref = np.empty((G, 3, B))
        for q in range(count):
            pix = idx[first_pixel + q]
            fpix[q] = pix % fpixels
            spix[q] = pix // fpixels - row0
            special[q] = block_first[block_of_row[pix // fpixels]] - pix * passes_per_pixel
        for t in range(layers):
            odist = t * thickstep
            for q in range(count):
                capture[q] = 1.0 if thick == 0.0 and not oversample_thick else 0.0
            for i in range(n):
                for jj in range(n):
                    # branches stay outside the pixel loops (or become selects), so that they vectorise
                    for q in range(count):
                        Fd = pq.subpixel_coordinate(fpix[q] * n + jj, subpixel)
                        Sd = pq.subpixel_coordinate(spix[q] * n + i, subpixel)
                        pos[0, q], pos[1, q], pos[2, q] = pq.point_on_panel(Fd, Sd, odist, fast, slow, normal, origin)
                    if curved:
                        for q in range(count):
                            pos[0, q], pos[1, q], pos[2, q] = pq.curved_point((pos[0, q], pos[1, q], pos[2, q]),
                                                                              distance, beam, fast, slow)
                    for q in range(count):
                        unit, airpath = pq.diffracted_direction((pos[0, q], pos[1, q], pos[2, q]))
                        d[0, q], d[1, q], d[2, q] = unit
                        fresh = pq.solid_angle(airpath, pixel, close, point_pixel)
                        omega[q] = fresh if omega[q] == 0.0 or oversample_omega else omega[q]
                        omega_sum[q] += omega[q]
                    if thick != 0.0 or oversample_thick:
                        for q in range(count):
                            if capture[q] == 0.0 or oversample_thick:
                                capture[q] = pq.capture_fraction(t, thickstep, mu,
                                                                 pq.parallax((d[0, q], d[1, q], d[2, q]), normal))
                    if precision == NEAR:
                        for a in range(3):
                            for q in range(count):
                                Sb[a, q] = d[a, q] * source_mean[3] + source_mean[a]
                        _split_references(refs, d, Sb, count, n_cells, split, j_ref)
                    for s in range(n_sources):
                        ix, iy, iz, w = src_dir[s, 0], src_dir[s, 1], src_dir[s, 2], inv_lambda[s]
                        incident, lam = (-ix, -iy, -iz), src_lambda[s]
                        if precision == DOUBLE or dmin > 0.0:
                            for q in range(count):
                                S[0, q], S[1, q], S[2, q] = pq.scattering_vector((d[0, q], d[1, q], d[2, q]), incident, lam)
                        if dmin > 0.0:
                            for q in range(count):
                                alive[q] = 0.0 if pq.beyond_dmin((S[0, q], S[1, q], S[2, q]), dmin) else 1.0
                        formed = polar_scratch[2]
                        if by_form and (oversample_polar or polar_pending):
                            _form_polarization(polar_form, polar_params, -ix, -iy, -iz, d, count, *polar_scratch)
                        if oversample_polar:  # every surviving pass takes its own factor
                            for q in range(count):
                                if alive[q] != 0.0:
                                    polar[q] = formed[q] if by_form else _polarization(
                                        polar_mode, kahn, polar_axis, -ix, -iy, -iz, d[0, q], d[1, q], d[2, q])
                        elif polar_pending:  # the first non-zero factor of a surviving pass is kept
                            polar_pending = False
                            for q in range(count):
                                if polar[q] == 0.0 and alive[q] != 0.0:
                                    polar[q] = formed[q] if by_form else _polarization(
                                        polar_mode, kahn, polar_axis, -ix, -iy, -iz, d[0, q], d[1, q], d[2, q])
                                polar_pending |= polar[q] == 0.0
                        if running:
                            # a weight scales the source's terms, with constant F folded into F2 (so
                            # that without weights the terms are scaled as they always were)
                            scaled, scale = constant_F, F2
                            if weighted:
                                scaled, scale = True, (F2 * src_weight[s] if constant_F else src_weight[s])
                            _running_source(shape, constant_F, scaled, scale, tables, variant_first, S, count,
                                            I, g, before, alive, special, ((t * n + i) * n + jj) * n_sources + s,
                                            capture, polar, omega, oversample_thick, oversample_polar,
                                            oversample_omega, lattice, form, form_params, sf, water, form_hkl, form_F)
                            continue
                        if precision == NEAR:
                            if deltas.shape[2] > 1:
                                for q in range(count):
                                    Sq = pq.scattering_vector((d[0, q], d[1, q], d[2, q]), incident, lam)
                                    S32[0, q], S32[1, q], S32[2, q] = _F32(Sq[0]), _F32(Sq[1]), _F32(Sq[2])
                            _near_pass(constant_F, deltas, split, j_ref, S32, _F32(w - source_mean[3]), source_offsets[s],
                                       count, y, acc32, n32, sf32)
                            for q in range(count):
                                acc[q] = np.float64(acc32[q])
                        elif interpolate:
                            pass_ordinal = ((t * n + i) * n + jj) * n_sources + s
                            for q in range(count):
                                keys[q] = (idx[first_pixel + q] * passes_per_pixel + pass_ordinal) * R
                                # a row block's first pass evaluates its own tables below, not these
                                counted[q] = alive[q] if special[q] != pass_ordinal or variant_first == 0 else 0.0
                            _interpolated_pass(shape, form, form_params, base_tables, S, count, acc, lattice, sf, water,
                                               counted, keys, switch_key, flag_key, flag_hkl, form_hkl, form_F)
                        elif shape == FORM:
                            _form_pass(form, form_params, constant_F, base_tables, S, count, acc, sf, form_hkl, form_F)
                        else:
                            _double_pass(shape, constant_F, base_tables, S, count, acc, lattice, sf)
                        if variant_first != 0:
                            ordinal = ((t * n + i) * n + jj) * n_sources + s
                            for q in range(count):
                                if special[q] != ordinal:
                                    continue
                                Sx, Sy, Sz = pq.scattering_vector((d[0, q], d[1, q], d[2, q]), incident, lam)
                                if interpolate:
                                    acc[q] = _interpolated_orientations(
                                        shape, form, form_params, tables[variant_first], Sx, Sy, Sz, lattice, sf,
                                        water, alive[q] != 0.0, keys[q], switch_key, flag_key, flag_hkl)
                                elif shape == FORM:
                                    acc[q] = _form_orientation_sum(form, form_params, constant_F, tables[variant_first],
                                                                   Sx, Sy, Sz, sf)
                                else:
                                    acc[q] = _orientation_sum(shape, constant_F, tables[variant_first], Sx, Sy, Sz,
                                                              lattice, sf)
                        if weighted:
                            for q in range(count):
                                acc[q] *= src_weight[s]
                        for q in range(count):
                            I[q] += alive[q] * (acc[q] * F2 if constant_F else acc[q])
        for q in range(count):
            value = prefactor * I[q]
            if thick != 0.0 and not oversample_thick:
                value *= capture[q]
            if not oversample_polar:
                value *= polar[q]
            if not oversample_omega:
                value *= omega[q]
            values[first_pixel + q] = value
            omegas[first_pixel + q] = omega_sum[q]
    return values, omegas, flag_keys, flag_hkls
