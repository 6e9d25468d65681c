"""The sphere's compiled form for nbsim's CPU loop (``nbsim.plugins.compiled_forms``): the same
formula as ``SphereLattice.evaluate``, for a block of Miller indices, in double precision.

Imported only when the numba engine asks for it (it imports numba).
"""

from __future__ import annotations

import math

from numba import carray, cfunc, njit

from nbsim.plugins.compiled_forms import LATTICE_PARAMS, lattice_signature
from nbsim_lattice_sphere import SERIES_BELOW


@njit(inline="always")
def _transform(x2):
    """3 (sin x - x cos x)/x^3 as a function of x^2, 1 at x = 0 (the tensor form's series below SERIES_BELOW)."""
    if x2 < SERIES_BELOW * SERIES_BELOW:
        return 1.0 - x2 / 10.0 + x2 * x2 / 280.0 - x2 * x2 * x2 / 15120.0
    x = math.sqrt(x2)
    return 3.0 * (math.sin(x) - x * math.cos(x)) / (x * x * x)


@cfunc(lattice_signature(), cache=True)
def sphere_form(hkl_p, n, params_p, out_p):
    hkl = carray(hkl_p, (3 * n,))
    p = carray(params_p, (LATTICE_PARAMS,))
    out = carray(out_p, (n,))
    ax, ay, az, bx, by, bz, cx, cy, cz = p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]
    v_star = abs(ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx))
    cells = p[0] * p[1] * p[2]
    radius = (3.0 * cells / (4.0 * math.pi * v_star)) ** (1.0 / 3.0)
    scale = (2.0 * math.pi * radius) ** 2
    for i in range(n):
        dh = hkl[i] - math.ceil(hkl[i] - 0.5)
        dk = hkl[n + i] - math.ceil(hkl[n + i] - 0.5)
        dl = hkl[2 * n + i] - math.ceil(hkl[2 * n + i] - 0.5)
        qx = dh * ax + dk * bx + dl * cx
        qy = dh * ay + dk * by + dl * cy
        qz = dh * az + dk * bz + dl * cz
        out[i] = cells * _transform(scale * (qx * qx + qy * qy + qz * qz))
