"""Compiled (numba) render loop for the CPU: the common case, without gradients.

The same physics as :mod:`nbsim.kernel` for the built-in lattice shapes and polarization
models, written as the reference program's loop (pixels in parallel, then layers,
sub-pixels, sources, orientations) and compiled with numba, with the exact-reduction sine of
:mod:`nbsim.trig` so that the innermost loop vectorizes.  Imported only when numba is
available; :mod:`nbsim.cpu` decides when it applies.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

SQUARE, ROUND, GAUSS, TOPHAT = 0, 1, 2, 3
#: how the lattice sums are taken: double precision, or single precision around a double
#: reference (orientations grouped near reference orientations, or sources near their mean)
DOUBLE, NEAR_ORIENTATIONS, NEAR_SOURCES = 0, 1, 2
PIXEL_BLOCK = 64  # pixels per parallel work item (scratch arrays are allocated per item)
LANES = 8  # source arrays are padded to a multiple of this (a vector of doubles)
NO_POLARIZATION, KAHN = 0, 1

@njit(inline="always", fastmath={"contract"})
def _sinpi(t):
    k = np.round(t)
    r = t - k
    r2 = r * r
    p = 5.392664662608129e-10
    p = p * r2 - 2.2948428997269873e-08
    p = p * r2 + 7.952054001475513e-07
    p = p * r2 - 2.1915353447830217e-05
    p = p * r2 + 0.00046630280576761255
    p = p * r2 - 0.0073704309457143504
    p = p * r2 + 0.08214588661112823
    p = p * r2 - 0.5992645293207921
    p = p * r2 + 2.5501640398773455
    p = p * r2 - 5.16771278004997
    p = p * r2 + 3.141592653589793
    half = k * 0.5
    sign = 1.0 - 4.0 * (half - np.floor(half))  # +1 for even k, -1 for odd
    return r * p * sign


@njit(inline="always", fastmath={"contract"})
def _sincg(h, n):
    """sin(π N h)/sin(π h) (N at integer h, with the sign of the limit)."""
    den = _sinpi(h)
    m = np.round(h) * (n - 1.0)
    half = m * 0.5
    limit = n * (1.0 - 4.0 * (half - np.floor(half)))
    ratio = _sinpi(n * h) / (den if den != 0.0 else 1.0)
    return limit if den == 0.0 else ratio


_F32 = np.float32
_S1, _S3, _S5, _S7 = _F32(3.141592653589793), _F32(-5.16771278004997), _F32(2.5501640398773455), _F32(-0.5992645293207921)
_S9, _S11, _S13 = _F32(0.08214588661112823), _F32(-0.0073704309457143504), _F32(0.00046630280576761255)


@njit(inline="always", fastmath={"contract"})
def _sinpi_near(x, parity):
    """sin(π (j + x)) in single precision, for an integer j of the given ``parity`` (0 or 1).

    Returned as (sin(π r), ±1) with r = x - rint(x), so that callers can take ratios' limits.
    """
    k = np.rint(x)  # np.round would promote to double
    r = x - k
    r2 = r * r
    p = ((((((_S13 * r2 + _S11) * r2 + _S9) * r2 + _S7) * r2 + _S5) * r2 + _S3) * r2 + _S1)
    half = (k + parity) * _F32(0.5)
    return r * p, _F32(1.0) - _F32(4.0) * (half - np.floor(half))


@njit(inline="always", fastmath={"contract"})
def _sincg_near(x, parity, parity_n, n):
    """sin(π N h)/sin(π h) in single precision at h = j + x (N whole; parities of j and N j).

    At integer h both sines vanish and the ratio's limit is N (-1)^(h (N - 1)), the product of
    the two signs.
    """
    den, den_sign = _sinpi_near(x, parity)
    num, num_sign = _sinpi_near(n * x, parity_n)
    return num_sign * den_sign * (num / den if den != _F32(0.0) else n)


@njit(inline="always")
def _parity(j):
    half = j * 0.5
    return _F32(2.0 * (half - np.floor(half)))


@njit
def _split(h, k, l, n):
    """(h, k, l) = j + x, j the nearest integers: returns x (single) and the ``near`` of :func:`_near_term`."""
    jh, jk, jl = np.rint(h), np.rint(k), np.rint(l)
    x = (_F32(h - jh), _F32(k - jk), _F32(l - jl))
    parity = (_parity(jh), _parity(jk), _parity(jl))
    parity_n = (_parity(jh * n[0]), _parity(jk * n[1]), _parity(jl * n[2]))
    return x, ((jh, jk, jl), parity, parity_n, (_F32(n[0]), _F32(n[1]), _F32(n[2])))


@njit(inline="always")
def _polarization(polar_mode, kahn, polar_axis, ix, iy, iz, dx, dy, dz):
    """The polarization factor of incident (ix, iy, iz) and diffracted (dx, dy, dz), both unit."""
    if polar_mode == NO_POLARIZATION:
        return 1.0
    c2 = ix * dx + iy * dy + iz * dz
    c2sq = c2 * c2
    if kahn == 0.0:
        return 0.5 * (1.0 + c2sq)
    # B = unit(axis x i), E = unit(i x B); cos 2psi = (E^2 - B^2)/(E^2 + B^2)
    ax, ay, az = polar_axis[0], polar_axis[1], polar_axis[2]
    Bx, By, Bz = ay * iz - az * iy, az * ix - ax * iz, ax * iy - ay * ix
    Bn = math.sqrt(Bx * Bx + By * By + Bz * Bz)
    if Bn > 0.0:
        Bx, By, Bz = Bx / Bn, By / Bn, Bz / Bn
    Ex, Ey, Ez = iy * Bz - iz * By, iz * Bx - ix * Bz, ix * By - iy * Bx
    En = math.sqrt(Ex * Ex + Ey * Ey + Ez * Ez)
    if En > 0.0:
        Ex, Ey, Ez = Ex / En, Ey / En, Ez / En
    E = dx * Ex + dy * Ey + dz * Ez
    B = dx * Bx + dy * By + dz * Bz
    norm = E * E + B * B
    cos2psi = (E * E - B * B) / norm if norm > 0.0 else 1.0
    return 0.5 * (1.0 + c2sq - kahn * cos2psi * (1.0 - c2sq))


@njit(inline="always")
def _sinc3(x):
    if x == 0.0:
        return 1.0
    return 3.0 * (math.sin(x) / x - math.cos(x)) / (x * x)


@njit(inline="always")
def _rotate_axis(vx, vy, vz, ax, ay, az, phi):
    s = math.sin(phi)
    c = math.cos(phi)
    d = (ax * vx + ay * vy + az * vz) * (1.0 - c)
    return (ax * d + vx * c + (-az * vy + ay * vz) * s,
            ay * d + vy * c + (az * vx - ax * vz) * s,
            az * d + vz * c + (-ay * vx + ax * vy) * s)


@njit(inline="always", fastmath={"contract"})
def _lookup(h0, k0, l0, sf):
    """F_cell at the integer indices (h0, k0, l0); ``sf`` = (grid, lo, hi, shape, default_F)."""
    grid, lo, hi, gshape, default_F = sf
    inside = lo[0] <= h0 <= hi[0] and lo[1] <= k0 <= hi[1] and lo[2] <= l0 <= hi[2]
    flat = ((int(h0) - lo[0]) * gshape[1] + (int(k0) - lo[1])) * gshape[2] + (int(l0) - lo[2])
    return grid[flat] if inside else default_F


@njit(inline="always", fastmath={"contract"})
def _term(shape, constant_F, h, k, l, lattice, sf):
    """F_latt^2 (times F_cell^2 unless constant) at fractional indices (h, k, l).

    ``lattice`` = (Na, Nb, Nc, fudge, reciprocal vectors (3, 3)).
    """
    na, nb, nc, fudge, recip = lattice
    if shape == SQUARE:
        F = _sincg(h, na) * _sincg(k, nb) * _sincg(l, nc)
    else:
        dh, dk, dl = h - np.ceil(h - 0.5), k - np.ceil(k - 0.5), l - np.ceil(l - 0.5)
        if shape == ROUND:
            hrad = dh * dh * na * na + dk * dk * nb * nb + dl * dl * nc * nc
            F = na * nb * nc * 0.723601254558268 * _sinc3(math.pi * math.sqrt(hrad * fudge))
        else:
            qx = dh * recip[0, 0] + dk * recip[1, 0] + dl * recip[2, 0]
            qy = dh * recip[0, 1] + dk * recip[1, 1] + dl * recip[2, 1]
            qz = dh * recip[0, 2] + dk * recip[1, 2] + dl * recip[2, 2]
            rad = (qx * qx + qy * qy + qz * qz) * na * na * nb * nb * nc * nc
            if shape == GAUSS:
                F = na * nb * nc * math.exp(-(rad / 0.63 * fudge))
            else:
                F = na * nb * nc if rad * fudge < 0.3969 else 0.0
    if constant_F:
        return F * F
    Fc = _lookup(np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5), sf)
    return Fc * Fc * F * F


@njit(inline="always", fastmath={"reassoc", "contract"})
def _orientation_loop(shape, constant_F, t, Sx, Sy, Sz, lattice, sf):
    """Σ over the orientations ``t`` (9, R) (rows a, b, c, one column per orientation)."""
    total = 0.0
    for r in range(t.shape[1]):
        h = t[0, r] * Sx + t[1, r] * Sy + t[2, r] * Sz
        k = t[3, r] * Sx + t[4, r] * Sy + t[5, r] * Sz
        l = t[6, r] * Sx + t[7, r] * Sy + t[8, r] * Sz
        total += _term(shape, constant_F, h, k, l, lattice, sf)
    return total


@njit(fastmath={"reassoc", "contract"})
def _orientation_sum(shape, constant_F, t, Sx, Sy, Sz, lattice, sf):
    """Σ over orientations; the square shape with constant F gets its own loop (no branches)."""
    if shape == SQUARE and constant_F:
        return _orientation_loop(SQUARE, True, t, Sx, Sy, Sz, lattice, sf)
    return _orientation_loop(shape, constant_F, t, Sx, Sy, Sz, lattice, sf)


@njit(inline="always", fastmath={"reassoc", "contract"})
def _source_loop(shape, constant_F, tables, vsel, r, Sx, Sy, Sz, alive, lattice, sf):
    total = 0.0
    if vsel[0] < 0:  # every source uses table 0 (the usual case): no per-lane gather of the lattice
        t = tables[0]
        t0, t1, t2, t3, t4, t5, t6, t7, t8 = t[0, r], t[1, r], t[2, r], t[3, r], t[4, r], t[5, r], t[6, r], t[7, r], t[8, r]
        for s in range(Sx.shape[0]):
            h = t0 * Sx[s] + t1 * Sy[s] + t2 * Sz[s]
            k = t3 * Sx[s] + t4 * Sy[s] + t5 * Sz[s]
            l = t6 * Sx[s] + t7 * Sy[s] + t8 * Sz[s]
            total += alive[s] * _term(shape, constant_F, h, k, l, lattice, sf)
        return total
    for s in range(Sx.shape[0]):
        t = tables[vsel[s]]
        h = t[0, r] * Sx[s] + t[1, r] * Sy[s] + t[2, r] * Sz[s]
        k = t[3, r] * Sx[s] + t[4, r] * Sy[s] + t[5, r] * Sz[s]
        l = t[6, r] * Sx[s] + t[7, r] * Sy[s] + t[8, r] * Sz[s]
        total += alive[s] * _term(shape, constant_F, h, k, l, lattice, sf)
    return total


@njit(fastmath={"reassoc", "contract"})
def _source_sum(shape, constant_F, tables, vsel, r, Sx, Sy, Sz, alive, lattice, sf):
    """Σ over sources of orientation ``r`` (vectorised over sources: few orientations, many sources)."""
    if shape == SQUARE and constant_F:
        return _source_loop(SQUARE, True, tables, vsel, r, Sx, Sy, Sz, alive, lattice, sf)
    return _source_loop(shape, constant_F, tables, vsel, r, Sx, Sy, Sz, alive, lattice, sf)


@njit(inline="always", fastmath={"contract"})
def _near_term(constant_F, h, k, l, near, sf32):
    """Single-precision F_latt^2 (F_cell^2) at (j + h, j + k, j + l) for the split ``near``.

    ``near`` = (j (3 integers, double), parities of j (3), parities of N j (3), N (3)), all but
    j in single precision.
    """
    j, parity, parity_n, n = near
    F = (_sincg_near(h, parity[0], parity_n[0], n[0]) * _sincg_near(k, parity[1], parity_n[1], n[1])
         * _sincg_near(l, parity[2], parity_n[2], n[2]))
    if not constant_F:
        half = _F32(0.5)
        F *= _lookup(j[0] + np.ceil(h - half), j[1] + np.ceil(k - half), j[2] + np.ceil(l - half), sf32)
    return F * F


@njit(inline="always", fastmath={"reassoc", "contract"})
def _near_orientation_loop(constant_F, delta, x, u, v, w, near, sf32):
    """Σ over orientations r of h = j + x + delta[:, r]·(u, v, w), single precision (delta (9, M))."""
    total = _F32(0.0)
    for r in range(delta.shape[1]):  # from 0: indices provably non-negative, so loads stay contiguous
        h = x[0] + (delta[0, r] * u + delta[1, r] * v + delta[2, r] * w)
        k = x[1] + (delta[3, r] * u + delta[4, r] * v + delta[5, r] * w)
        l = x[2] + (delta[6, r] * u + delta[7, r] * v + delta[8, r] * w)
        total += _near_term(constant_F, h, k, l, near, sf32)
    return np.float64(total)


@njit(fastmath={"reassoc", "contract"})
def _near_orientation_sum(constant_F, delta, x, u, v, w, near, sf32):
    if constant_F:  # its own loop, without the lookup's branches
        return _near_orientation_loop(True, delta, x, u, v, w, near, sf32)
    return _near_orientation_loop(False, delta, x, u, v, w, near, sf32)


@njit(inline="always", fastmath={"reassoc", "contract"})
def _near_source_loop(constant_F, t, r, u, v, w, alive, x, near, sf32):
    """Σ over source lanes of h = j + x + t[:, r]·(u, v, w)[s], single precision."""
    t0, t1, t2, t3, t4, t5, t6, t7, t8 = t[0, r], t[1, r], t[2, r], t[3, r], t[4, r], t[5, r], t[6, r], t[7, r], t[8, r]
    total = _F32(0.0)
    for s in range(u.shape[0]):
        h = x[0] + (t0 * u[s] + t1 * v[s] + t2 * w[s])
        k = x[1] + (t3 * u[s] + t4 * v[s] + t5 * w[s])
        l = x[2] + (t6 * u[s] + t7 * v[s] + t8 * w[s])
        total += alive[s] * _near_term(constant_F, h, k, l, near, sf32)
    return np.float64(total)


@njit(fastmath={"reassoc", "contract"})
def _near_source_sum(constant_F, t, r, u, v, w, alive, x, near, sf32):
    if constant_F:
        return _near_source_loop(True, t, r, u, v, w, alive, x, near, sf32)
    return _near_source_loop(False, t, r, u, v, w, alive, x, near, sf32)


@njit(fastmath={"reassoc", "contract"})
def _near_groups(constant_F, refs, deltas, Sx, Sy, Sz, n, sf32):
    """Σ over every orientation at S, grouped near reference orientations ``refs`` (G, 9);
    ``deltas`` (G, 9, M) the single-precision differences from them."""
    u, v, w = _F32(Sx), _F32(Sy), _F32(Sz)
    total = 0.0
    for g in range(refs.shape[0]):
        t = refs[g]
        x, near = _split(t[0] * Sx + t[1] * Sy + t[2] * Sz, t[3] * Sx + t[4] * Sy + t[5] * Sz,
                         t[6] * Sx + t[7] * Sy + t[8] * Sz, n)
        total += _near_orientation_sum(constant_F, deltas[g], x, u, v, w, near, sf32)
    return total


@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def render_pixels(idx, fpixels, geo, curved, point_pixel, n, layers, thickstep, mu, thick,
                  src_dir, src_lambda, dmin, polar_mode, kahn, polar_axis, nopolar,
                  tables, variant_first, block_of_row, block_first, passes_per_pixel,
                  shape, lattice, sf, constant_F, precision, refs, near_tables, source_mean, sf32,
                  prefactor, I_bg):
    """Values (P,) and solid-angle sums (P,) of the pixels ``idx`` (flat raster indices).

    ``geo`` (6, 4) = rows pix0, fdet, sdet, odet, beam (x, y, z, 0), then (pixel_size,
    subpixel size, distance, close_distance); ``tables`` (V, 9, R) lattice vectors (rows a, b,
    c) of each orientation, variant 0 for every pass but a row block's first executed pass,
    which uses ``variant_first``.  ``precision`` picks the lattice sums: DOUBLE; NEAR_ORIENTATIONS
    with ``refs`` (V, G, 9) reference orientations and ``near_tables`` (V, G, 9, M) the
    single-precision differences from them of the orientations in each group (G groups of M in
    order); or NEAR_SOURCES with ``near_tables`` (V, 1, 9, R) the single-precision tables and
    ``source_mean`` (4,) the mean source (Σ src/λ, Σ 1/λ)/S.
    """
    P = idx.shape[0]
    S = src_dir.shape[0]
    inv_lambda = 1.0 / src_lambda
    S_pad = (S + LANES - 1) // LANES * LANES
    R = tables.shape[2]
    values = np.empty(P)
    omegas = np.empty(P)
    pix0x, pix0y, pix0z = geo[0, 0], geo[0, 1], geo[0, 2]
    fx, fy, fz = geo[1, 0], geo[1, 1], geo[1, 2]
    sx, sy, sz = geo[2, 0], geo[2, 1], geo[2, 2]
    ox, oy, oz = geo[3, 0], geo[3, 1], geo[3, 2]
    bx, by, bz = geo[4, 0], geo[4, 1], geo[4, 2]
    pixel, subpixel, distance, close = geo[5, 0], geo[5, 1], geo[5, 2], geo[5, 3]
    n_cells = (lattice[0], lattice[1], lattice[2])
    F2 = sf[4] * sf[4]
    blocks = (P + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    for blk in prange(blocks):
        # padded to whole vectors: the source loop then has no scalar remainder
        Sxa = np.zeros(S_pad)
        Sya = np.zeros(S_pad)
        Sza = np.zeros(S_pad)
        alive = np.zeros(S_pad)
        vsel = np.zeros(S_pad, dtype=np.int64)
        dSx = np.zeros(S_pad, dtype=np.float32)
        dSy = np.zeros(S_pad, dtype=np.float32)
        dSz = np.zeros(S_pad, dtype=np.float32)
        alive32 = np.zeros(S_pad, dtype=np.float32)
        for p in range(blk * PIXEL_BLOCK, min(P, (blk + 1) * PIXEL_BLOCK)):
            pix = idx[p]
            fpix = pix % fpixels
            spix = pix // fpixels
            block = block_of_row[spix]
            I = I_bg
            omega = 0.0
            polar = 1.0 if nopolar else 0.0
            capture = 1.0
            omega_sum = 0.0
            for t in range(layers):
                odist = t * thickstep
                capture_layer = 1.0 if thick == 0.0 else 0.0
                for i in range(n):
                    for j in range(n):
                        Fd = subpixel * (fpix * n + j) + subpixel / 2.0
                        Sd = subpixel * (spix * n + i) + subpixel / 2.0
                        px = Fd * fx + Sd * sx + odist * ox + pix0x
                        py = Fd * fy + Sd * sy + odist * oy + pix0y
                        pz = Fd * fz + Sd * sz + odist * oz + pix0z
                        if curved:
                            vx, vy, vz = _rotate_axis(distance * bx, distance * by, distance * bz, sx, sy, sz, py / distance)
                            px, py, pz = _rotate_axis(vx, vy, vz, fx, fy, fz, pz / distance)
                        R2 = math.sqrt(px * px + py * py + pz * pz)
                        dx, dy, dz = px / R2, py / R2, pz / R2
                        if omega == 0.0:
                            omega = 1.0 / R2 / R2 if point_pixel else pixel * pixel / R2 / R2 * close / R2
                        omega_sum += omega
                        if capture_layer == 0.0:
                            parallax = dx * ox + dy * oy + dz * oz
                            capture_layer = math.exp(-t * thickstep * mu / parallax) - math.exp(-(t + 1) * thickstep * mu / parallax)
                        # scattering vectors of every source (branch-free, so the loop vectorises)
                        for s in range(S):
                            Sxa[s] = (dx + src_dir[s, 0]) * inv_lambda[s]
                            Sya[s] = (dy + src_dir[s, 1]) * inv_lambda[s]
                            Sza[s] = (dz + src_dir[s, 2]) * inv_lambda[s]
                            alive[s] = 1.0
                            vsel[s] = 0
                        if dmin > 0.0:
                            for s in range(S):
                                stol = 0.5 * math.sqrt(Sxa[s] * Sxa[s] + Sya[s] * Sya[s] + Sza[s] * Sza[s])
                                if stol > 0.0 and dmin > 0.5 / stol:
                                    alive[s] = 0.0
                        if polar == 0.0:  # the first non-zero factor of a surviving pass is kept
                            for s in range(S):
                                if alive[s] == 0.0:
                                    continue
                                polar = _polarization(polar_mode, kahn, polar_axis, -src_dir[s, 0], -src_dir[s, 1],
                                                      -src_dir[s, 2], dx, dy, dz)
                                if polar != 0.0:
                                    break
                        base = pix * passes_per_pixel + ((t * n + i) * n + j) * S
                        first = block_first[block] - base
                        odd = -1  # the source that uses the first pass's orientations, if any
                        if variant_first != 0 and 0 <= first < S and alive[first] != 0.0:
                            vsel[first] = variant_first
                            odd = first
                        elif R < S:
                            vsel[0] = -1  # tells the source loop that one table serves every source
                        # the lattice sums, vectorised over whichever is longer: orientations or sources
                        total = 0.0
                        if precision == NEAR_ORIENTATIONS:
                            for s in range(S):
                                if alive[s] != 0.0:
                                    total += _near_groups(constant_F, refs[vsel[s]], near_tables[vsel[s]], Sxa[s],
                                                          Sya[s], Sza[s], n_cells, sf32)
                        elif precision == NEAR_SOURCES:
                            Sbx = dx * source_mean[3] + source_mean[0]
                            Sby = dy * source_mean[3] + source_mean[1]
                            Sbz = dz * source_mean[3] + source_mean[2]
                            for s in range(S):
                                dSx[s] = _F32(Sxa[s] - Sbx)
                                dSy[s] = _F32(Sya[s] - Sby)
                                dSz[s] = _F32(Sza[s] - Sbz)
                                alive32[s] = _F32(alive[s])
                            if odd >= 0:
                                alive32[odd] = _F32(0.0)
                            tb = tables[0]
                            for r in range(R):
                                x, near = _split(tb[0, r] * Sbx + tb[1, r] * Sby + tb[2, r] * Sbz,
                                                 tb[3, r] * Sbx + tb[4, r] * Sby + tb[5, r] * Sbz,
                                                 tb[6, r] * Sbx + tb[7, r] * Sby + tb[8, r] * Sbz, n_cells)
                                total += _near_source_sum(constant_F, near_tables[0, 0], r, dSx, dSy, dSz, alive32,
                                                          x, near, sf32)
                            if odd >= 0:
                                total += _orientation_sum(SQUARE, constant_F, tables[variant_first], Sxa[odd],
                                                          Sya[odd], Sza[odd], lattice, sf)
                        elif R >= S:
                            for s in range(S):
                                if alive[s] != 0.0:
                                    total += _orientation_sum(shape, constant_F, tables[vsel[s]], Sxa[s], Sya[s],
                                                              Sza[s], lattice, sf)
                        else:
                            for r in range(R):
                                total += _source_sum(shape, constant_F, tables, vsel, r, Sxa, Sya, Sza, alive,
                                                     lattice, sf)
                        I += total * F2 if constant_F else total
                capture = capture_layer
            value = prefactor * I
            if thick != 0.0:
                value *= capture
            values[p] = value * polar * omega
            omegas[p] = omega_sum
    return values, omegas
