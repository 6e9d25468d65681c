"""A literal, sequential transcription of the reference program's pixel loop, for tiny images.

It walks pixels, layers, sub-pixels, sources, phi steps and domains one by one in the
reference order, with the cached factors and the running products exactly as the C code has
them, and the phi = 0 carry-over when ``stale_phi`` is set (one thread).  Used to check the
vectorized kernel on configurations the golden cases do not combine.
"""

from __future__ import annotations

import math

import numpy as np

R_E_SQR = 7.94079248018965e-30


def _unit(v):
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return v / n if n else v * 0, n


def _rot_axis(v, ax, phi):
    s, c = math.sin(phi), math.cos(phi)
    d = (ax[0] * v[0] + ax[1] * v[1] + ax[2] * v[2]) * (1.0 - c)
    return np.array([ax[0] * d + v[0] * c + (-ax[2] * v[1] + ax[1] * v[2]) * s,
                     ax[1] * d + v[1] * c + (ax[2] * v[0] - ax[0] * v[2]) * s,
                     ax[2] * d + v[2] * c + (-ax[1] * v[0] + ax[0] * v[1]) * s])


def _polar(K, inc, dif, axis):
    inc, _ = _unit(inc)
    dif, _ = _unit(dif)
    c2 = inc @ dif
    c2sq = c2 * c2
    s2sq = 1 - c2sq
    psi = 0.0
    if K != 0.0:
        B, _ = _unit(np.cross(axis, inc))
        E, _ = _unit(np.cross(inc, B))
        psi = -math.atan2(dif @ B, dif @ E)
    return 0.5 * (1.0 + c2sq - K * math.cos(2 * psi) * s2sq)


def _sincg(x, n):
    return n if x == 0.0 else math.sin(x * n) / math.sin(x)


def render(m, *, stale_phi: bool = False) -> np.ndarray:
    cfg = m.config
    d, s, b, c = cfg.detector, cfg.sampling, cfg.beam, cfg.crystal
    g = m.geometry
    f_, s_, o_, pix0, beam = (np.array(x.tolist()) for x in (g.fdet, g.sdet, g.odet, g.pix0, g.beam))
    dirs = np.array(m.sources.directions.tolist())
    lams = np.array(m.sources.wavelengths.tolist())
    base = np.array(m.base_vectors.tolist())
    spindle = np.array(m.spindle.tolist())
    umats = None if m.mosaic is None else np.array(m.mosaic.tolist())
    phis = [float(x) for x in m.phi]
    Na, Nb, Nc = (float(x) for x in m.n_cells)
    n = m.oversample
    sub = float(m.subpixel_size)
    pixel = float(m.pixel_size)
    close = float(g.close_distance)
    thickstep, mu = float(m.thickstep), float(m.mu)
    K = float(m.kahn)
    polar_axis = np.array(m.polar_vector.tolist())
    fluence = float(m.fluence)
    I_bg = float(m.I_bg)
    grid = None if c.structure_factors is None else c.structure_factors
    default_F = c.default_F
    image = np.zeros((d.spixels, d.fpixels))
    ap = base.copy()
    xmin, xmax, ymin, ymax = d.roi
    for spixel in range(d.spixels):
        for fpixel in range(d.fpixels):
            if fpixel < xmin or fpixel > xmax or spixel < ymin or spixel > ymax:
                continue
            if d.mask is not None and not d.mask[spixel, fpixel]:
                continue
            I = I_bg
            polar = 1.0 if b.nopolar else 0.0
            omega = 0.0
            for t in range(d.thicksteps):
                Odet = t * thickstep
                capture = 1.0 if d.thickness == 0.0 else 0.0
                for subS in range(n):
                    for subF in range(n):
                        Fdet = sub * (fpixel * n + subF) + sub / 2.0
                        Sdet = sub * (spixel * n + subS) + sub / 2.0
                        pos = Fdet * f_ + Sdet * s_ + Odet * o_ + pix0
                        dif, R = _unit(pos)
                        if omega == 0.0 or s.oversample_omega:
                            omega = pixel * pixel / R / R * close / R
                            if d.point_pixel:
                                omega = 1.0 / R / R
                        if capture == 0.0 or s.oversample_thick:
                            par = dif @ o_
                            capture = math.exp(-t * thickstep * mu / par) - math.exp(-(t + 1) * thickstep * mu / par)
                        for src in range(len(lams)):
                            inc = -dirs[src]
                            S = (dif - inc) / lams[src]
                            stol = 0.5 * math.sqrt(S @ S)
                            if s.dmin > 0.0 and stol > 0.0 and s.dmin > 0.5 / stol:
                                continue
                            if polar == 0.0 or s.oversample_polar:
                                polar = _polar(K, inc, dif, polar_axis)
                            for phi in phis:
                                if phi != 0.0 or not stale_phi:
                                    ap = np.array([_rot_axis(v, spindle, phi) for v in base])
                                for mos in range(m.domains):
                                    lat = ap if umats is None else np.array([umats[mos] @ v for v in ap])
                                    h, k, l = (lat @ S).tolist()
                                    h0, k0, l0 = (math.ceil(x - 0.5) for x in (h, k, l))
                                    F_latt = 1.0
                                    if c.shape == "square":
                                        F_latt = (_sincg(math.pi * h, Na) if Na > 1 else 1.0) * (
                                            _sincg(math.pi * k, Nb) if Nb > 1 else 1.0) * (
                                            _sincg(math.pi * l, Nc) if Nc > 1 else 1.0)
                                    elif c.shape == "tophat":
                                        rs = np.array(m.lattice.reciprocal.tolist())
                                        dv = (h - h0) * rs[0] + (k - k0) * rs[1] + (l - l0) * rs[2]
                                        rad = (dv @ dv) * Na * Na * Nb * Nb * Nc * Nc
                                        F_latt = Na * Nb * Nc * (rad * c.fudge < 0.3969)
                                    if F_latt == 0.0 and b.water_size == 0.0:
                                        continue
                                    F_cell = default_F
                                    if grid is not None and grid.count and grid.h_min <= h0 <= grid.h_max and \
                                            grid.k_min <= k0 <= grid.k_max and grid.l_min <= l0 <= grid.l_max:
                                        F_cell = grid.grid[h0 - grid.h_min, k0 - grid.k_min, l0 - grid.l_min]
                                    I += F_cell * F_cell * F_latt * F_latt
                                    if s.oversample_thick:
                                        I *= capture
                                    if s.oversample_polar:
                                        I *= polar
                                    if s.oversample_omega:
                                        I *= omega
            v = R_E_SQR * fluence * I / m.steps
            if not s.oversample_thick:
                v *= capture
            if not s.oversample_polar:
                v *= polar
            if not s.oversample_omega:
                v *= omega
            image[spixel, fpixel] = v
    return image
