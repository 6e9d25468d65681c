"""Three-vector formulas written operation for operation like the reference program.

Angles are radians; rotations are right-handed and active.  Each formula evaluates its
components in the same order as the reference program so that double-precision results
agree to the last bit wherever the math library agrees.  The formulas themselves take
vectors as triples of components, tensors or numbers (:mod:`nbsim.physics.dual_math`), so that the
numba engine compiles the very same ones; the tensor functions below (vectors as tensors
whose last dimension has size 3, lab frame) apply them, broadcast and are differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nbsim.physics.dual_math import cos, formula, select, sin, sqrt


@formula
def dot3(x, y):
    """x·y, summed as (x0*y0 + x1*y1) + x2*y2."""
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]


@formula
def cross3(x, y):
    """x × y, right-handed."""
    return (x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0])


@formula
def unit3(v):
    """(v/|v|, |v|); a zero vector stays zero, as in the reference program."""
    mag = sqrt(dot3(v, v))
    some = mag != 0.0
    safe = select(some, mag, 1.0)
    return (select(some, v[0] / safe, 0.0), select(some, v[1] / safe, 0.0), select(some, v[2] / safe, 0.0)), mag


@formula
def rotate3(v, axis, phi):
    """v rotated by phi about the unit vector ``axis`` (Rodrigues' formula, reference order)."""
    s = sin(phi)
    c = cos(phi)
    ax, ay, az = axis[0], axis[1], axis[2]
    vx, vy, vz = v[0], v[1], v[2]
    d = (ax * vx + ay * vy + az * vz) * (1.0 - c)
    return (ax * d + vx * c + (-az * vy + ay * vz) * s,
            ay * d + vy * c + (az * vx - ax * vz) * s,
            az * d + vz * c + (-ay * vx + ax * vy) * s)


def components(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The (x, y, z) of tensor vectors, as the formulas take them."""
    return v[..., 0], v[..., 1], v[..., 2]


def stacked(xyz) -> Tensor:
    """A formula's triple as tensor vectors (..., 3), broadcast."""
    return torch.stack(torch.broadcast_tensors(*xyz), dim=-1)


def dot(x: Tensor, y: Tensor) -> Tensor:
    """x·y (:func:`dot3`)."""
    return dot3(components(x), components(y))


def cross(x: Tensor, y: Tensor) -> Tensor:
    """x × y (:func:`cross3`)."""
    return stacked(cross3(components(x), components(y)))


def norm(v: Tensor) -> Tensor:
    """|v| = sqrt(x*x + y*y + z*z)."""
    return torch.sqrt(dot(v, v))


def unitize(v: Tensor) -> tuple[Tensor, Tensor]:
    """(v/|v|, |v|) (:func:`unit3`)."""
    unit, mag = unit3(components(v))
    return stacked(unit), mag


def rotate_xyz(v: Tensor, rx: Tensor, ry: Tensor, rz: Tensor) -> Tensor:
    """Rotate about lab x by rx, then lab y by ry, then lab z by rz: v' = Rz·Ry·Rx·v.

    The reference skips a step whose angle is exactly 0; with cos 0 = 1 and sin 0 = 0 the
    step is an exact identity, so it is always applied here (and stays differentiable).
    """
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    c, s = torch.cos(rx), torch.sin(rx)
    x, y, z = x, y * c + z * (-s), y * s + z * c
    c, s = torch.cos(ry), torch.sin(ry)
    x, y, z = x * c + y * 0.0 + z * s, y, x * (-s) + y * 0.0 + z * c
    c, s = torch.cos(rz), torch.sin(rz)
    x, y, z = x * c + y * (-s), x * s + y * c, z
    return torch.stack(torch.broadcast_tensors(x, y, z), dim=-1)


def rotate_axis(v: Tensor, axis: Tensor, phi: Tensor) -> Tensor:
    """Rotate v by phi about the unit vector ``axis`` (:func:`rotate3`)."""
    return stacked(rotate3(components(v), components(axis), phi))


def apply_matrix(u: Tensor, v: Tensor) -> Tensor:
    """u·v for row-major 3x3 matrices u (..., 3, 3) and vectors v (..., 3)."""
    return torch.stack(
        (
            u[..., 0, 0] * v[..., 0] + u[..., 0, 1] * v[..., 1] + u[..., 0, 2] * v[..., 2],
            u[..., 1, 0] * v[..., 0] + u[..., 1, 1] * v[..., 1] + u[..., 1, 2] * v[..., 2],
            u[..., 2, 0] * v[..., 0] + u[..., 2, 1] * v[..., 1] + u[..., 2, 2] * v[..., 2],
        ),
        dim=-1,
    )
