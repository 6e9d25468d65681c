"""The built-in polarization models' compiled forms (``nbsim.plugins.compiled_forms``), and the
scalar function the CPU loop inlines for them (as :mod:`nbsim.plugins.builtins.lattice_forms` does for
the shapes).  Imports numba: loaded only when the numba engine asks for a form.
"""

from __future__ import annotations

from numba import carray, cfunc, njit

from nbsim.physics import jit
from nbsim.physics.kahn import kahn_factor
from nbsim.plugins.compiled_forms import POLARIZATION_PARAMS, polarization_signature

jit.numba()  # the shared formulas compile only once numba is set up (nbsim.physics.dual_math)

#: the models' codes in the loop
NO_POLARIZATION, KAHN = 0, 1


@njit(inline="always")
def polarization_factor(mode, kahn, polar_axis, ix, iy, iz, dx, dy, dz):
    """The polarization factor of incident (ix, iy, iz) and diffracted (dx, dy, dz), both unit,
    for the model ``mode``: :func:`nbsim.physics.kahn.kahn_factor`, compiled."""
    if mode == NO_POLARIZATION:
        return 1.0
    return kahn_factor((ix, iy, iz), (dx, dy, dz), (polar_axis[0], polar_axis[1], polar_axis[2]), kahn, kahn == 0.0)


@njit(inline="always")
def _form(mode, incident_p, diffracted_p, n, params_p, out_p):
    i = carray(incident_p, (3,))
    d = carray(diffracted_p, (3 * n,))
    p = carray(params_p, (POLARIZATION_PARAMS,))
    out = carray(out_p, (n,))
    axis = p[1:].copy()
    for q in range(n):
        out[q] = polarization_factor(mode, p[0], axis, i[0], i[1], i[2], d[q], d[n + q], d[2 * n + q])


@cfunc(polarization_signature(), cache=True)
def kahn_form(incident, diffracted, n, params, out):
    _form(KAHN, incident, diffracted, n, params, out)


@cfunc(polarization_signature(), cache=True)
def none_form(incident, diffracted, n, params, out):
    _form(NO_POLARIZATION, incident, diffracted, n, params, out)


#: the forms the loop inlines, with their codes
INLINE = {kahn_form: KAHN, none_form: NO_POLARIZATION}
FORMS = {"kahn": kahn_form, "none": none_form}
