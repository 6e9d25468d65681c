"""Three-vector primitives written operation for operation like the reference program.

Vectors are tensors whose last dimension has size 3 (x, y, z, lab frame); angles are
radians; rotations are right-handed and active.  Each function evaluates its components in
the same order as the reference program so that double-precision results agree to the last
bit wherever the math library agrees; all of them broadcast and are differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dot(x: Tensor, y: Tensor) -> Tensor:
    """x·y, summed as (x0*y0 + x1*y1) + x2*y2."""
    return x[..., 0] * y[..., 0] + x[..., 1] * y[..., 1] + x[..., 2] * y[..., 2]


def cross(x: Tensor, y: Tensor) -> Tensor:
    """x × y, right-handed."""
    return torch.stack(
        (
            x[..., 1] * y[..., 2] - x[..., 2] * y[..., 1],
            x[..., 2] * y[..., 0] - x[..., 0] * y[..., 2],
            x[..., 0] * y[..., 1] - x[..., 1] * y[..., 0],
        ),
        dim=-1,
    )


def norm(v: Tensor) -> Tensor:
    """|v| = sqrt(x*x + y*y + z*z)."""
    return torch.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])


def unitize(v: Tensor) -> tuple[Tensor, Tensor]:
    """(v/|v|, |v|); a zero vector stays zero, as in the reference program."""
    mag = norm(v)
    safe = torch.where(mag != 0, mag, torch.ones_like(mag))
    unit = torch.where((mag != 0)[..., None], v / safe[..., None], torch.zeros_like(v))
    return unit, mag


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
    """Rotate v by phi about the unit vector ``axis`` (Rodrigues' formula, reference order)."""
    s = torch.sin(phi)
    c = torch.cos(phi)
    d = (axis[..., 0] * v[..., 0] + axis[..., 1] * v[..., 1] + axis[..., 2] * v[..., 2]) * (1.0 - c)
    ax, ay, az = axis[..., 0], axis[..., 1], axis[..., 2]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    x = ax * d + vx * c + (-az * vy + ay * vz) * s
    y = ay * d + vy * c + (az * vx - ax * vz) * s
    z = az * d + vz * c + (-ay * vx + ax * vy) * s
    return torch.stack(torch.broadcast_tensors(x, y, z), dim=-1)


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
