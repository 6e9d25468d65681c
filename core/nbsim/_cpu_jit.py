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

SQUARE, ROUND, GAUSS, TOPHAT, SINGLE_SQUARE = 0, 1, 2, 3, 4
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
def _sinpi32(t):
    """sin(π t) in single precision after the exact reduction in double."""
    k = np.round(t)
    r = _F32(t - k)
    r2 = r * r
    p = ((((((_S13 * r2 + _S11) * r2 + _S9) * r2 + _S7) * r2 + _S5) * r2 + _S3) * r2 + _S1)
    half = k * 0.5
    sign = _F32(1.0 - 4.0 * (half - np.floor(half)))
    return r * p * sign


@njit(inline="always", fastmath={"contract"})
def _sincg32(h, n):
    den = _sinpi32(h)
    m = np.round(h) * (n - 1.0)
    half = m * 0.5
    limit = _F32(n * (1.0 - 4.0 * (half - np.floor(half))))
    ratio = _sinpi32(n * h) / (den if den != _F32(0.0) else _F32(1.0))
    return limit if den == _F32(0.0) else ratio


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
def _term(shape, constant_F, t, Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape, default_F):
    """F_latt^2 (times F_cell^2 unless constant) of one orientation ``t`` (3, 3) at S.

    ``shape`` SINGLE_SQUARE is the square shape in single precision (``--dtype float32``).
    """
    h = t[0, 0] * Sx + t[0, 1] * Sy + t[0, 2] * Sz
    k = t[1, 0] * Sx + t[1, 1] * Sy + t[1, 2] * Sz
    l = t[2, 0] * Sx + t[2, 1] * Sy + t[2, 2] * Sz
    if shape == SINGLE_SQUARE:
        f = _sincg32(h, na) * _sincg32(k, nb) * _sincg32(l, nc)
        F = np.float64(f)
    elif shape == SQUARE:
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
    h0, k0, l0 = np.ceil(h - 0.5), np.ceil(k - 0.5), np.ceil(l - 0.5)
    inside = lo[0] <= h0 <= hi[0] and lo[1] <= k0 <= hi[1] and lo[2] <= l0 <= hi[2]
    flat = ((int(h0) - lo[0]) * gshape[1] + (int(k0) - lo[1])) * gshape[2] + (int(l0) - lo[2])
    Fc = grid[flat] if inside else default_F
    return Fc * Fc * F * F


@njit(inline="always", fastmath={"reassoc", "contract"})
def _orientation_sum(shape, constant_F, tv, Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape, default_F):
    total = 0.0
    for r in range(tv.shape[0]):
        total += _term(shape, constant_F, tv[r], Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape,
                       default_F)
    return total


@njit(fastmath={"reassoc", "contract"})
def _pass_sum(shape, constant_F, tv, Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape, default_F):
    """Σ over orientations; the square shape with constant F gets its own loop (no branches)."""
    if shape == SQUARE and constant_F:
        return _orientation_sum(SQUARE, True, tv, Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape,
                                default_F)
    if shape == SINGLE_SQUARE and constant_F:
        return _orientation_sum(SINGLE_SQUARE, True, tv, Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape,
                                default_F)
    return _orientation_sum(shape, constant_F, tv, Sx, Sy, Sz, na, nb, nc, fudge, recip, grid, lo, hi, gshape,
                            default_F)


@njit(inline="always", fastmath={"reassoc", "contract"})
def _sources_loop(shape, constant_F, tables, vsel, r, Sx, Sy, Sz, alive, na, nb, nc, fudge, recip, grid, lo, hi,
                  gshape, default_F):
    total = 0.0
    if vsel[0] < 0:  # every source uses table 0 (the usual case): no per-lane gather of the lattice
        t = tables[0, r]
        for s in range(Sx.shape[0]):
            total += alive[s] * _term(shape, constant_F, t, Sx[s], Sy[s], Sz[s], na, nb, nc, fudge, recip, grid,
                                      lo, hi, gshape, default_F)
        return total
    for s in range(Sx.shape[0]):
        total += alive[s] * _term(shape, constant_F, tables[vsel[s], r], Sx[s], Sy[s], Sz[s], na, nb, nc, fudge,
                                  recip, grid, lo, hi, gshape, default_F)
    return total


@njit(fastmath={"reassoc", "contract"})
def _source_sum(shape, constant_F, tables, vsel, r, Sx, Sy, Sz, alive, na, nb, nc, fudge, recip, grid, lo, hi,
                gshape, default_F):
    """Σ over sources of orientation ``r`` (vectorised over sources: few orientations, many sources).

    The square shape with constant F gets its own loop (constants folded, no branches).
    """
    if shape == SQUARE and constant_F:
        return _sources_loop(SQUARE, True, tables, vsel, r, Sx, Sy, Sz, alive, na, nb, nc, fudge, recip, grid, lo,
                             hi, gshape, default_F)
    if shape == SINGLE_SQUARE and constant_F:
        return _sources_loop(SINGLE_SQUARE, True, tables, vsel, r, Sx, Sy, Sz, alive, na, nb, nc, fudge, recip, grid,
                             lo, hi, gshape, default_F)
    return _sources_loop(shape, constant_F, tables, vsel, r, Sx, Sy, Sz, alive, na, nb, nc, fudge, recip, grid, lo,
                         hi, gshape, default_F)


@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def render_pixels(idx, fpixels, geo, curved, point_pixel, n, layers, thickstep, mu, thick,
                  src_dir, src_lambda, dmin, polar_mode, kahn, polar_axis, nopolar,
                  tables, variant_first, block_of_row, block_first, passes_per_pixel,
                  shape, n_cells, fudge, recip, grid, lo, hi, gshape, default_F, constant_F,
                  prefactor, I_bg):
    """Values (P,) and solid-angle sums (P,) of the pixels ``idx`` (flat raster indices).

    ``geo`` (6, 4) = rows pix0, fdet, sdet, odet, beam (x, y, z, 0), then (pixel_size,
    subpixel size, distance, close_distance); ``tables`` (V, R, 3, 3) lattice vectors for each orientation,
    variant 0 for every pass but a row block's first executed pass, which uses
    ``variant_first``.
    """
    P = idx.shape[0]
    S = src_dir.shape[0]
    inv_lambda = 1.0 / src_lambda
    S_pad = (S + LANES - 1) // LANES * LANES
    R = tables.shape[1]
    values = np.empty(P)
    omegas = np.empty(P)
    pix0x, pix0y, pix0z = geo[0, 0], geo[0, 1], geo[0, 2]
    fx, fy, fz = geo[1, 0], geo[1, 1], geo[1, 2]
    sx, sy, sz = geo[2, 0], geo[2, 1], geo[2, 2]
    ox, oy, oz = geo[3, 0], geo[3, 1], geo[3, 2]
    bx, by, bz = geo[4, 0], geo[4, 1], geo[4, 2]
    pixel, subpixel, distance, close = geo[5, 0], geo[5, 1], geo[5, 2], geo[5, 3]
    na, nb, nc = n_cells[0], n_cells[1], n_cells[2]
    F2 = default_F * default_F
    blocks = (P + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    for blk in prange(blocks):
        # padded to whole vectors: the source loop then has no scalar remainder
        Sxa = np.zeros(S_pad)
        Sya = np.zeros(S_pad)
        Sza = np.zeros(S_pad)
        alive = np.zeros(S_pad)
        vsel = np.zeros(S_pad, dtype=np.int64)
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
                        if variant_first != 0 and 0 <= first < S and alive[first] != 0.0:
                            vsel[first] = variant_first
                        elif R < S:
                            vsel[0] = -1  # tells the source loop that one table serves every source
                        # the lattice sums, vectorised over whichever is longer: orientations or sources
                        total = 0.0
                        if R >= S:
                            for s in range(S):
                                if alive[s] != 0.0:
                                    total += _pass_sum(shape, constant_F, tables[vsel[s]], Sxa[s], Sya[s], Sza[s],
                                                       na, nb, nc, fudge, recip, grid, lo, hi, gshape, default_F)
                        else:
                            for r in range(R):
                                total += _source_sum(shape, constant_F, tables, vsel, r, Sxa, Sya, Sza, alive, na, nb,
                                                     nc, fudge, recip, grid, lo, hi, gshape, default_F)
                        I += total * F2 if constant_F else total
                capture = capture_layer
            value = prefactor * I
            if thick != 0.0:
                value *= capture
            values[p] = value * polar * omega
            omegas[p] = omega_sum
    return values, omegas
