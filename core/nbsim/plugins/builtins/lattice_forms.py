"""The built-in shapes' compiled forms (``nbsim.plugins.compiled_forms``), and the scalar formulas
the CPU loop inlines for them.

Each shape offers the loop a numba cfunc (``SquareLattice.compiled_form()`` and so on), the
way any plugin does, and the contract suite checks it against ``evaluate``.  The cfuncs are
built from :func:`lattice_factor`, the one scalar version of the four formulas; the loop
(:mod:`nbsim.engines.numba_loop`) recognises these forms (:data:`INLINE`) and inlines that same
function instead of calling through a pointer, which lets its inner loops vectorise.  sin(πh)
uses the exact-reduction polynomial of :mod:`nbsim.physics.trig`.  Imports numba: loaded only when
the numba engine asks for a form.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, cfunc, njit

from nbsim.plugins.builtins.shape_constants import GAUSS_WIDTH, ROUND_NORM, TOPHAT_RADIUS2
from nbsim.plugins.compiled_forms import LATTICE_PARAMS, lattice_signature

#: the shapes' codes in the loop
SQUARE, ROUND, GAUSS, TOPHAT = 0, 1, 2, 3


@njit(inline="always", fastmath={"contract"})
def sinpi(t):
    """sin(π t) after an exact reduction of t to [-1/2, 1/2] (``nbsim.physics.trig``)."""
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
def sincg(h, n):
    """sin(π N h)/sin(π h) (N at integer h, with the sign of the limit)."""
    den = sinpi(h)
    m = np.round(h) * (n - 1.0)
    half = m * 0.5
    limit = n * (1.0 - 4.0 * (half - np.floor(half)))
    ratio = sinpi(n * h) / (den if den != 0.0 else 1.0)
    return limit if den == 0.0 else ratio


@njit(inline="always")
def sinc3(x):
    if x == 0.0:
        return 1.0
    return 3.0 * (math.sin(x) / x - math.cos(x)) / (x * x)


@njit(inline="always", fastmath={"contract"})
def lattice_factor(shape, h, k, l, lattice):
    """F_latt of a built-in shape at fractional indices (h, k, l).

    ``lattice`` = (Na, Nb, Nc, fudge, reciprocal vectors (3, 3)).  One exit, no early returns:
    the loops that inline it vectorise only then (measured: early returns cost 15-20%).
    """
    na, nb, nc, fudge, recip = lattice
    if shape == SQUARE:
        F = sincg(h, na) * sincg(k, nb) * sincg(l, nc)
    else:
        dh, dk, dl = h - np.ceil(h - 0.5), k - np.ceil(k - 0.5), l - np.ceil(l - 0.5)
        if shape == ROUND:
            hrad = dh * dh * na * na + dk * dk * nb * nb + dl * dl * nc * nc
            F = na * nb * nc * ROUND_NORM * sinc3(math.pi * math.sqrt(hrad * fudge))
        else:
            qx = dh * recip[0, 0] + dk * recip[1, 0] + dl * recip[2, 0]
            qy = dh * recip[0, 1] + dk * recip[1, 1] + dl * recip[2, 1]
            qz = dh * recip[0, 2] + dk * recip[1, 2] + dl * recip[2, 2]
            rad = (qx * qx + qy * qy + qz * qz) * na * na * nb * nb * nc * nc
            if shape == GAUSS:
                F = na * nb * nc * math.exp(-(rad / GAUSS_WIDTH * fudge))
            else:
                F = na * nb * nc if rad * fudge < TOPHAT_RADIUS2 else 0.0
    return F


@njit(inline="always")
def _form(shape, hkl_p, n, params_p, out_p):
    hkl = carray(hkl_p, (3 * n,))
    p = carray(params_p, (LATTICE_PARAMS,))
    out = carray(out_p, (n,))
    lattice = (p[0], p[1], p[2], p[3], p[4:].copy().reshape((3, 3)))
    for i in range(n):
        out[i] = lattice_factor(shape, hkl[i], hkl[n + i], hkl[2 * n + i], lattice)


@cfunc(lattice_signature(), cache=True)
def square_form(hkl, n, params, out):
    _form(SQUARE, hkl, n, params, out)


@cfunc(lattice_signature(), cache=True)
def round_form(hkl, n, params, out):
    _form(ROUND, hkl, n, params, out)


@cfunc(lattice_signature(), cache=True)
def gauss_form(hkl, n, params, out):
    _form(GAUSS, hkl, n, params, out)


@cfunc(lattice_signature(), cache=True)
def tophat_form(hkl, n, params, out):
    _form(TOPHAT, hkl, n, params, out)


#: the forms the loop inlines, by form object, with their shape codes
INLINE = {square_form: SQUARE, round_form: ROUND, gauss_form: GAUSS, tophat_form: TOPHAT}
#: each built-in shape's form, by the shape's name
FORMS = {"square": square_form, "round": round_form, "gauss": gauss_form, "tophat": tophat_form}
