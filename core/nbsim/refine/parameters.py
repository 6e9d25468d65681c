"""What ``nbsim refine`` varies: the parameters, their units, and the optimizer's coordinates.

The optimizer never sees a parameter directly. It works on dimensionless coordinates ``u``
(zero at the start) chosen so that a unit step changes the image by comparable amounts and
so that every value of ``u`` is a possible model:

* most parameters are ``start + step * u`` with the step of :data:`UNITS`;
* the cell is a function of coordinates that cannot describe an impossible cell
  (:class:`CellCoordinates`): the upper-triangular reciprocal basis (its diagonal by
  logarithms) for a triclinic cell, or, with a space group, only the lengths and angles its
  crystal system leaves free (gemmi's space groups).
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from nbsim.errors import UsageError

DEG = 180.0 / math.pi


@attrs.frozen
class Unit:
    """How a parameter is shown (value_in_unit = si * factor) and its optimizer step (SI, or
    with ``relative`` a fraction of each start value, of the mean magnitude at least)."""

    factor: float | tuple[float, ...]
    unit: str | tuple[str, ...]
    step: float | tuple[float, ...]
    relative: bool = False


#: parameters ``nbsim refine`` accepts, with display units and optimizer steps
UNITS = {
    "cell": Unit((1.0, 1.0, 1.0, DEG, DEG, DEG), ("Å", "Å", "Å", "deg", "deg", "deg"), (0.1, 0.1, 0.1, 1e-3, 1e-3, 1e-3)),
    "distance": Unit(1000.0, "mm", 1e-4),
    "close_distance": Unit(1000.0, "mm", 1e-4),
    "beam_center": Unit(1000.0, "mm", 2e-5),
    "misset": Unit(DEG, "deg", 1e-3),
    "detector_rotation": Unit(DEG, "deg", 1e-3),
    "twotheta": Unit(DEG, "deg", 1e-3),
    "wavelength": Unit(1e10, "Å", 1e-13),
    "pixel_size": Unit(1000.0, "mm", 1e-7),
    "mosaic_spread": Unit(DEG, "deg", 1e-3),
    "phi0": Unit(DEG, "deg", 1e-3),
    "phistep": Unit(DEG, "deg", 1e-3),
    "n_cells": Unit(1.0, "cells", 0.1),
    "polarization": Unit(1.0, "", 0.01),
    "dispersion": Unit(100.0, "%", 1e-4),
    "fudge": Unit(1.0, "", 0.01),
    "hdivrange": Unit(1000.0, "mrad", 1e-5),
    "vdivrange": Unit(1000.0, "mrad", 1e-5),
    "detector_thickness": Unit(1e6, "µm", 1e-6),
    "attenuation_depth": Unit(1e6, "µm", 1e-6),
    "panel_shift": Unit(1000.0, "mm", 1e-5),
    "panel_rotation": Unit(DEG, "deg", 1e-3),
    "structure_factors": Unit(1.0, "", 0.01, relative=True),
}

#: what to refine instead of a parameter the image does not depend on, where that is known
INERT_HINTS = {
    "beam_center": "under the XDS and DIALS conventions -Xbeam/-Ybeam do not move the detector, which -ORGX/-ORGY "
                   "place; refine distance and detector_rotation, or use -mosflm",
}

#: the step of every cell coordinate: a relative change of a length, or an angle in radians
CELL_STEP = 1e-3


def as_tuple(x, n: int) -> tuple:
    return tuple(x) if isinstance(x, tuple) else (x,) * n


def display(name: str, value: Tensor) -> list[float]:
    """``value`` (SI) in the display units of ``name``."""
    v = value.detach().cpu().reshape(-1).tolist()
    return [x * f for x, f in zip(v, as_tuple(UNITS[name].factor, len(v)))]


def from_display(name: str, values: list[float], like: Tensor) -> Tensor:
    """Values of ``name`` in its display units back in SI, shaped and typed ``like``."""
    factors = torch.as_tensor(as_tuple(UNITS[name].factor, len(values)), dtype=like.dtype, device=like.device)
    return (torch.as_tensor(values, dtype=like.dtype, device=like.device) / factors).reshape(like.shape)


def _metric(cell: Tensor) -> Tensor:
    """The real-space metric tensor G (Å²) of a cell (a, b, c, alpha, beta, gamma)."""
    a, b, c, alpha, beta, gamma = cell.unbind()
    ab, ac, bc = a * b * torch.cos(gamma), a * c * torch.cos(beta), b * c * torch.cos(alpha)
    return torch.stack((torch.stack((a * a, ab, ac)), torch.stack((ab, b * b, bc)), torch.stack((ac, bc, c * c))))


def _cell_of_metric(G: Tensor) -> Tensor:
    a, b, c = (torch.sqrt(G[i, i]) for i in range(3))
    return torch.stack((a, b, c, torch.acos(G[1, 2] / (b * c)), torch.acos(G[0, 2] / (a * c)),
                        torch.acos(G[0, 1] / (a * b))))


def crystal_system(space_group: str | None) -> tuple[str, str]:
    """(crystal system, setting) of a space-group name or number (gemmi), ("triclinic", "") for None.

    The setting tells the free cell parameters apart where a system has several: the unique
    axis of a monoclinic group ("a", "b" or "c"), rhombohedral ("R") or hexagonal axes.
    """
    if space_group is None:
        return "triclinic", ""
    import gemmi

    group = gemmi.find_spacegroup_by_name(str(space_group).strip())
    if group is None:
        raise UsageError(f"--space-group: {space_group!r} is not a space group gemmi knows (a name such as "
                         "'P 21 21 21' or a number)")
    system = group.crystal_system_str()
    if system == "monoclinic":
        return system, (group.qualifier or "b")[0]
    if system == "trigonal" and group.ext == "R":
        return "rhombohedral", "R"
    return ("hexagonal" if system == "trigonal" else system), ""


_RIGHT, _HEX = math.pi / 2, 2 * math.pi / 3


class CellCoordinates:
    """A cell as a function of unconstrained coordinates (zero at the start cell).

    Triclinic: x = (ln B11, ln B22, ln B33, B12/B11, B13/B11, B23/B22) of the upper-triangular
    reciprocal basis B (Cholesky factor of the reciprocal metric, G* = BᵀB): any x is a
    positive-definite metric, so a possible cell. With a crystal system: the logarithms of
    the free lengths and the free angles (monoclinic beta, rhombohedral alpha), the other
    angles fixed at 90 or 120 degrees. Coordinates are divided by :data:`CELL_STEP`.
    """

    def __init__(self, start: Tensor, system: str = "triclinic", setting: str = ""):
        self.system, self.setting = system, setting
        self.start = self.symmetrized(start)
        self.origin = self._coordinates(self.start).detach()

    @property
    def size(self) -> int:
        return int(self.origin.numel())

    def symmetrized(self, cell: Tensor) -> Tensor:
        """``cell`` with the equalities and fixed angles of the crystal system imposed.

        :raises UsageError: when ``cell`` is more than 2% (lengths) or 2 degrees (angles) from
            a cell of the system.
        """
        a, b, c, alpha, beta, gamma = cell.unbind()
        right = torch.full_like(a, _RIGHT)
        s = self.system
        if s == "triclinic":
            want = cell
        elif s == "monoclinic":
            angles = {"a": (alpha, right, right), "b": (right, beta, right), "c": (right, right, gamma)}[self.setting]
            want = torch.stack((a, b, c, *angles))
        elif s == "orthorhombic":
            want = torch.stack((a, b, c, right, right, right))
        elif s in ("tetragonal", "hexagonal"):
            ab = (a + b) / 2
            last = right if s == "tetragonal" else torch.full_like(a, _HEX)
            want = torch.stack((ab, ab, c, right, right, last))
        elif s == "rhombohedral":
            length, angle = (a + b + c) / 3, (alpha + beta + gamma) / 3
            want = torch.stack((length, length, length, angle, angle, angle))
        else:  # cubic
            length = (a + b + c) / 3
            want = torch.stack((length, length, length, right, right, right))
        lengths = (want[:3] / cell[:3] - 1).abs().max()
        angles = (want[3:] - cell[3:]).abs().max()
        if float(lengths) > 0.02 or float(angles) > math.radians(2):
            shown = " ".join(f"{float(x):.4g}" for x in display("cell", cell))
            raise UsageError(f"--space-group: the starting cell {shown} is not a {s} cell")
        return want

    def _coordinates(self, cell: Tensor) -> Tensor:
        s = self.system
        if s == "triclinic":
            B = torch.linalg.cholesky(torch.linalg.inv(_metric(cell)), upper=True)
            return torch.stack((B[0, 0].log(), B[1, 1].log(), B[2, 2].log(), B[0, 1] / B[0, 0], B[0, 2] / B[0, 0],
                                B[1, 2] / B[1, 1])) / CELL_STEP
        a, b, c, alpha, beta, gamma = cell.unbind()
        free = {"monoclinic": (a.log(), b.log(), c.log(), {"a": alpha, "b": beta, "c": gamma}.get(self.setting)),
                "orthorhombic": (a.log(), b.log(), c.log()), "tetragonal": (a.log(), c.log()),
                "hexagonal": (a.log(), c.log()), "rhombohedral": (a.log(), alpha), "cubic": (a.log(),)}[s]
        return torch.stack(free) / CELL_STEP

    def cell(self, u: Tensor) -> Tensor:
        """The cell (a, b, c in Å, angles in radians) at coordinates ``origin + u``."""
        x = (self.origin + u) * CELL_STEP
        s = self.system
        if s == "triclinic":
            zero = torch.zeros_like(x[0])
            d0, d1, d2 = x[0].exp(), x[1].exp(), x[2].exp()
            B = torch.stack((torch.stack((d0, x[3] * d0, x[4] * d0)), torch.stack((zero, d1, x[5] * d1)),
                             torch.stack((zero, zero, d2))))
            return _cell_of_metric(torch.linalg.inv(B.T @ B))
        right = torch.full_like(x[0], _RIGHT)
        if s == "monoclinic":
            a, b, c, angle = x[0].exp(), x[1].exp(), x[2].exp(), x[3]
            angles = {"a": (angle, right, right), "b": (right, angle, right), "c": (right, right, angle)}[self.setting]
            return torch.stack((a, b, c, *angles))
        if s == "orthorhombic":
            return torch.stack((x[0].exp(), x[1].exp(), x[2].exp(), right, right, right))
        if s in ("tetragonal", "hexagonal"):
            a, c = x[0].exp(), x[1].exp()
            last = right if s == "tetragonal" else torch.full_like(a, _HEX)
            return torch.stack((a, a, c, right, right, last))
        if s == "rhombohedral":
            a, angle = x[0].exp(), x[1]
            return torch.stack((a, a, a, angle, angle, angle))
        a = x[0].exp()
        return torch.stack((a, a, a, right, right, right))


def _steps(name: str, start: Tensor) -> Tensor:
    unit = UNITS[name]
    step = torch.as_tensor(unit.step, dtype=start.dtype, device=start.device).expand_as(start).clone()
    if unit.relative:
        magnitude = start.abs()
        step = step * torch.maximum(magnitude, magnitude.mean().clamp_min(1e-30))
    return step


class Coordinates:
    """The optimizer's variables for parameters ``start`` (name -> SI tensor): ``u`` (zeros,
    requiring grad) and :meth:`params`, the parameters at ``u``."""

    def __init__(self, start: dict[str, Tensor], *, space_group: str | None = None):
        self.start = dict(start)
        self.cell = None
        if "cell" in start:
            self.cell = CellCoordinates(start["cell"], *crystal_system(space_group))
            self.start["cell"] = self.cell.start
        elif space_group is not None:
            raise UsageError("--space-group: constrains the cell, which is not refined")
        self.steps = {n: _steps(n, v) for n, v in start.items() if n != "cell"}
        self.u = {n: torch.zeros(self.cell.size if n == "cell" else v.shape, dtype=v.dtype, device=v.device,
                                 requires_grad=True) for n, v in start.items()}

    @property
    def leaves(self) -> list[Tensor]:
        return list(self.u.values())

    def params(self) -> dict[str, Tensor]:
        return {n: self.cell.cell(u) if n == "cell" else self.start[n] + self.steps[n] * u for n, u in self.u.items()}

    def snapshot(self) -> dict[str, Tensor]:
        return {n: u.detach().clone() for n, u in self.u.items()}

    def restore(self, values: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for n, u in self.u.items():
                u.copy_(values[n])
