"""The built-in polarization models' compiled forms (``nbsim.compiled_forms``), and the
scalar formula the CPU loop inlines for them (as :mod:`nbsim.builtins.lattice_forms` does for
the shapes).  Imports numba: loaded only when the numba engine asks for a form.
"""

from __future__ import annotations

import math

from numba import carray, cfunc, njit

from nbsim.compiled_forms import POLARIZATION_PARAMS, polarization_signature

#: the models' codes in the loop
NO_POLARIZATION, KAHN = 0, 1


@njit(inline="always")
def polarization_factor(mode, kahn, polar_axis, ix, iy, iz, dx, dy, dz):
    """The polarization factor of incident (ix, iy, iz) and diffracted (dx, dy, dz), both unit,
    for the model ``mode`` (``nbsim.builtins.polarization``)."""
    if mode == NO_POLARIZATION:
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
