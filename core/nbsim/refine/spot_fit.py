"""The coarse stage of a refinement: the model's lattice fitted to the observed spots.

A pixel-by-pixel fit only converges when every spot of the model already overlaps its
observed spot: at Miller index h a relative cell error e moves a spot by e*h of the spacing
between spots, so a 3% error is beyond reach from h = 10 on, and a beam centre off by half
a spot spacing puts every model spot between two observed ones.  This stage brings the
geometric parameters (:data:`SPOT_PARAMETERS`) that close first, as indexing programs do:

* every observed spot (:mod:`nbsim.refine.spots`) is mapped to reciprocal space with the
  model's detector and beam, and its fractional Miller indices h computed with the model's
  crystal at the middle of its phi range;
* its residual is the distance of those indices from the nearest integers: the error of
  its position, and how far the lattice point lies off the Ewald sphere, which a crystal of
  N cells keeps within about 1/N (leaving that component out would leave a lattice axis
  along the beam undetermined);
* the loss is robust (a misassigned spot costs a bounded amount) plus a restraint of every
  parameter to its start, with the uncertainty of a start that indexing gives
  (:data:`START_UNCERTAINTY`): directions the spots do not yet determine stay put;
* spots enter in shells of growing index (:data:`INDEX_SHELLS`), each refit with its
  indices reassigned, so that an index is only assigned once the model is good enough to
  get it right; a second schedule starts from lower indices (:data:`LOW_INDEX_SHELLS`), and
  the end that fits every spot best is kept (:data:`SCHEDULES`);
* a beam centre is searched first on a grid across its uncertainty (:func:`search_grid`):
  near the beam the spots form a nearly periodic lattice, so a start half a spacing off
  fits the wrong spots as well as the right ones until high-index spots (the Ewald
  sphere's curvature) tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from nbsim.physics import pass_quantities as pq
from nbsim.physics.vectors import components, rotate_axis, stacked
from nbsim.refine.parameters import Coordinates
from nbsim.refine.spots import Spots

#: the parameters that move spots and that this stage refines (others wait for the pixels)
SPOT_PARAMETERS = ("cell", "misset", "distance", "close_distance", "beam_center", "detector_rotation", "twotheta",
                   "panel_shift", "panel_rotation")
#: one standard deviation of a start from indexing: relative for lengths and distances,
#: radians for angles, pixels for the beam centre and panel shifts
START_UNCERTAINTY = {"cell_length": 0.03, "cell_angle": math.radians(2.0), "distance": 0.02, "close_distance": 0.02,
                     "beam_center": 2.0, "misset": math.radians(1.0), "detector_rotation": math.radians(1.0),
                     "twotheta": math.radians(1.0), "panel_shift": 2.0, "panel_rotation": math.radians(1.0)}
#: the largest |h|, |k|, |l| of the spots of each shell
INDEX_SHELLS = (8, 10, 13, 16, 20, 25, 30, 36, 43, 52, 62, 75, 90, 110, 135, 165, 200)
#: fewest spots of the first shell (it grows until it has them)
FIRST_SHELL_SPOTS = 40
#: the second schedule: shells from lower indices, fewer spots first (a start whose angles are
#: off by a few degrees assigns wrong indices already at |h| = 8; from these it does not, but
#: with so few spots other starts wander): both run, the spots judge
LOW_INDEX_SHELLS = (3, 4, 5, 6, *INDEX_SHELLS)
LOW_INDEX_FIRST_SPOTS = 15
#: the schedules: (shells, fewest spots of the first, shells a beam-centre grid start goes through)
SCHEDULES = ((INDEX_SHELLS, FIRST_SHELL_SPOTS, 4), (LOW_INDEX_SHELLS, LOW_INDEX_FIRST_SPOTS, 5))
#: width of the robust loss, in index units: a residual r costs log(1 + |r|²/ROBUST²)
ROBUST = 0.15
#: the beam-centre grid's spacing in pixels
GRID_STEP = 1.0


class SpotFit:
    """The spot loss of ``sim`` (its model at the parameters of ``coords``) for ``spots``."""

    def __init__(self, sim, spots: Spots, coords: Coordinates, names: Sequence[str]):
        self.sim, self.spots, self.coords = sim, spots, coords
        self.names = tuple(n for n in names if n in SPOT_PARAMETERS)
        dev, dt = sim.device, torch.float64
        self._panel = torch.as_tensor(spots.panel, device=dev)
        self._fast = torch.as_tensor(spots.fast, dtype=dt, device=dev)
        self._slow = torch.as_tensor(spots.slow, dtype=dt, device=dev)
        self._pixel = float(sim.model().panels.pixel_size.mean())
        self._sigma = self._uncertainty()
        self.evaluations = 0

    def _uncertainty(self) -> dict[str, Tensor]:
        start, u = self.coords.start, START_UNCERTAINTY
        sigma = {}
        for n in self.names:
            v = start[n]
            if n == "cell":
                sigma[n] = torch.cat((v[:3].abs() * u["cell_length"], torch.full_like(v[3:], u["cell_angle"])))
            elif n in ("distance", "close_distance"):
                sigma[n] = v.abs() * u[n]
            elif n in ("beam_center", "panel_shift"):
                sigma[n] = torch.full_like(v, u[n] * self._pixel)
            else:
                sigma[n] = torch.full_like(v, u[n])
        return sigma

    def indices(self, params: dict[str, Tensor], keep: Tensor | None = None) -> Tensor:
        """(N, 3) fractional Miller indices of the spots (those of ``keep``) at ``params``."""
        self.evaluations += 1
        m = self.sim.model(params)
        panel, fast, slow = self._panel, self._fast, self._slow
        if keep is not None:
            panel, fast, slow = panel[keep], fast[keep], slow[keep]
        p = m.panels

        def at(v: Tensor) -> tuple[Tensor, ...]:
            return components(v[panel])

        size = p.pixel_size[panel]
        point = pq.point_on_panel((fast + 0.5) * size, (slow + 0.5) * size, 0.0, at(p.fast), at(p.slow),
                                  at(p.normal), at(p.origin))
        direction, _ = pq.diffracted_direction(point)
        incident = -m.sources.directions.mean(0)
        incident = incident / incident.norm()
        wavelength = m.sources.wavelengths.mean()
        q = stacked(pq.scattering_vector(direction, components(incident), wavelength))
        return rotate_axis(q, m.spindle, -m.phi.mean()) @ m.base_vectors.T  # h = (R(phi) a) . q

    def residuals(self, params: dict[str, Tensor], hkl: Tensor, keep: Tensor) -> Tensor:
        """(N, 3) fractional indices minus the assigned ``hkl`` of the spots ``keep``."""
        return self.indices(params, keep) - hkl

    def restraint(self, params: dict[str, Tensor]) -> Tensor:
        start = self.coords.start
        return sum((((params[n] - start[n]) / self._sigma[n]) ** 2).sum() for n in self.names)

    def objective(self, hkl: Tensor, keep: Tensor) -> Tensor:
        params = self.coords.params()
        r = self.residuals(params, hkl, keep)
        return torch.log1p((r * r).sum(-1) / ROBUST ** 2).sum() + self.restraint(params)

    def shells(self, limits: Sequence[int] = INDEX_SHELLS, first: int = FIRST_SHELL_SPOTS) -> list[Tensor]:
        """Masks of the spots of each shell (of index ``limits``; the first of at least ``first``
        spots), by their indices at the current parameters."""
        with torch.no_grad():
            h = self.indices(self.coords.params())
        largest = h.abs().max(-1).values
        masks, previous = [], -1
        for limit in (*limits, math.inf):
            keep = largest <= limit
            count = int(keep.sum())
            if count < first and limit != math.inf:
                continue
            if count > previous:
                masks.append(keep)
                previous = count
            if count == len(largest):
                break
        return masks

    def fit_shell(self, keep: Tensor, *, rounds: int = 2, max_iter: int = 40) -> float:
        """Refit with the spots ``keep``, their indices reassigned before each round; the objective."""
        leaves = [self.coords.u[n] for n in self.names]
        value = math.nan
        for _ in range(rounds):
            with torch.no_grad():
                hkl = self.indices(self.coords.params(), keep).round()
            opt = torch.optim.LBFGS(leaves, lr=1, max_iter=max_iter, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20)

            def closure():
                opt.zero_grad()
                loss = self.objective(hkl, keep)
                loss.backward()
                return loss

            value = float(opt.step(closure).detach())
        return value

    def score(self, keep: Tensor) -> float:
        """The objective over ``keep`` with indices assigned at the current parameters."""
        with torch.no_grad():
            hkl = self.indices(self.coords.params(), keep).round()
            return float(self.objective(hkl, keep))

    def run(self, progress: Callable[[str], None] | None = None) -> None:
        """Refine :attr:`names` by each schedule of :data:`SCHEDULES` from the start (after its
        beam-centre search), and keep the end whose objective over every spot is lowest."""
        if not self.names or len(self.spots) < FIRST_SHELL_SPOTS:
            return
        start, best = self.coords.snapshot(), None
        everything = torch.ones(len(self.spots), dtype=torch.bool, device=self._fast.device)
        for limits, first, grid_shells in SCHEDULES:
            self.coords.restore(start)
            if "beam_center" in self.names:
                self.search_beam_center(self.shells(limits, first)[:grid_shells], progress)
            for keep in self.shells(limits, first):
                value = self.fit_shell(keep)
                if progress:
                    progress(f"spots  {int(keep.sum()):5d} of {len(self.spots)}  objective {value:.6g}  "
                             f"evaluations {self.evaluations}")
            value = self.score(everything)
            if best is None or value < best[0]:
                best = (value, self.coords.snapshot())
        self.coords.restore(best[1])
        if progress:
            progress(f"spots  kept the schedule ending at objective {best[0]:.6g} over every spot")

    def search_beam_center(self, masks: list[Tensor], progress: Callable[[str], None] | None = None) -> None:
        """Start from the best point of a grid across the beam centre's uncertainty: each
        grid start refined through the shells ``masks``, then scored on the last of them."""
        u0 = self.coords.snapshot()
        judged = masks[-1]
        best = None
        pixel_steps = self._pixel / self.coords.steps["beam_center"]
        for offset in search_grid(START_UNCERTAINTY["beam_center"], GRID_STEP):
            start = {n: v.clone() for n, v in u0.items()}
            start["beam_center"] = start["beam_center"] + torch.as_tensor(offset, dtype=start["beam_center"].dtype,
                                                                          device=start["beam_center"].device) * pixel_steps
            self.coords.restore(start)
            for keep in masks:
                self.fit_shell(keep, rounds=1, max_iter=20)
            value = self.score(judged)
            if best is None or value < best[0]:
                best = (value, offset, self.coords.snapshot())
        self.coords.restore(best[2])
        if progress:
            progress(f"spots  beam centre search: best start {best[1][0]:+.0f}, {best[1][1]:+.0f} pixels "
                     f"(objective {best[0]:.6g} on {int(judged.sum())} spots)")


def search_grid(radius: float, step: float) -> list[tuple[float, float]]:
    """Offsets (x, y) of a square grid of ``step`` out to ``radius`` in each, nearest first."""
    n = int(math.floor(radius / step))
    points = [(i * step, j * step) for i in range(-n, n + 1) for j in range(-n, n + 1)]
    return sorted(points, key=lambda p: (p[0] ** 2 + p[1] ** 2, p))

