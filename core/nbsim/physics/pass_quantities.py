"""The quantities of a pass, each formula once, for every engine (``specs/physics.md``).

A pass is one (pixel, sensor layer, sub-pixel, source) of the reference program's loop.  Its
sub-pixel position, diffracted direction and distance, solid angle, capture fraction,
scattering vector and ``-dmin`` cut are the functions below; the polarization factor is the
polarization model's.  The tensor kernel (:func:`nbsim.engines.tensor_kernel.pass_geometry`) calls them
with tensors, the numba loop (:mod:`nbsim.engines.numba_loop`) compiles the same functions for its
scalars (:mod:`nbsim.physics.dual_math`); the engines differ only in how they sum over orientations
and accumulate.  Vectors are triples of components; lengths in metres, wavelengths in metres.
"""

from __future__ import annotations

from nbsim.physics.dual_math import divide, exp, formula, select, sqrt
from nbsim.physics.vectors import dot3, rotate3, unit3


@formula
def subpixel_coordinate(index, subpixel_size):
    """Distance along a panel axis from the panel's origin to the centre of the sub-pixel
    ``index`` (pixel * oversample + sub-pixel, counted along that axis)."""
    return subpixel_size * index + subpixel_size / 2.0


@formula
def point_on_panel(f, s, o, fast, slow, normal, origin):
    """The point ``f`` along the fast axis, ``s`` along the slow axis and ``o`` along the normal
    (the sensor layer's depth) from the panel's origin."""
    return (f * fast[0] + s * slow[0] + o * normal[0] + origin[0],
            f * fast[1] + s * slow[1] + o * normal[1] + origin[1],
            f * fast[2] + s * slow[2] + o * normal[2] + origin[2])


@formula
def curved_point(p, distance, beam, fast, slow):
    """Where a flat panel's point ``p`` lies on the curved detector (``-curved_det``): every pixel
    at ``distance`` from the sample, the beam's point turned about the slow axis by p_y/distance,
    then about the fast axis by p_z/distance."""
    start = (distance * beam[0], distance * beam[1], distance * beam[2])
    turned = rotate3(start, slow, p[1] / distance)
    return rotate3(turned, fast, p[2] / distance)


@formula
def diffracted_direction(p):
    """(unit vector from the sample to ``p``, its distance: the air path)."""
    return unit3(p)


@formula
def solid_angle(airpath, pixel_size, close_distance, point_pixel):
    """The solid angle of a pixel seen at ``airpath`` (``-point_pixel``: 1/airpath^2)."""
    if point_pixel:
        return 1.0 / airpath / airpath
    return pixel_size * pixel_size / airpath / airpath * close_distance / airpath


@formula
def capture_fraction(layer, thickstep, mu, parallax):
    """The fraction of the photons arriving at a parallax (cosine to the sensor normal) that
    sensor layer ``layer`` of thickness ``thickstep`` absorbs, attenuation ``mu`` per metre."""
    return exp(-layer * thickstep * mu / parallax) - exp(-(layer + 1) * thickstep * mu / parallax)


@formula
def parallax(direction, normal):
    """The cosine between the diffracted direction and the sensor normal."""
    return dot3(direction, normal)


@formula
def scattering_vector(direction, incident, wavelength):
    """(d - i)/λ for diffracted direction d and incident direction i, both unit."""
    return (divide(direction[0] - incident[0], wavelength), divide(direction[1] - incident[1], wavelength),
            divide(direction[2] - incident[2], wavelength))


@formula
def beyond_dmin(scattering, dmin):
    """Whether the scattering vector lies beyond the ``-dmin`` resolution limit (dmin > 0): the
    reference's test dmin > 1/(2 sin θ/λ), at a non-zero sin θ/λ."""
    stol = 0.5 * sqrt(dot3(scattering, scattering))
    some = stol > 0.0
    return some & (dmin > 0.5 / select(some, stol, 1.0))
