"""Refine model parameters against an observed image (``nbsim refine``, ``docs/refinement.md``).

The model is a :class:`~nbsim.simulation.Simulation`; the optimizer works on dimensionless
coordinates in which every value is a possible model (:mod:`nbsim.refine.parameters`).  Two
stages:

1. **Spots** (:mod:`nbsim.refine.spot_fit`): the geometric parameters fitted to the observed
   spots' positions, shell by shell of growing Miller index, after a beam-centre search;
   this brings a start as far off as indexing leaves it (cell 3%, distance 2%, beam centre
   2 pixels, orientation 1 degree) into reach of the pixels.
2. **Pixels**: the Poisson-weighted squared residual with the overall scale profiled out
   (solved in closed form at every evaluation, so it is always refined):

       k(θ) = Σ w O M(θ) / Σ w M(θ)²,   L(θ) = Σ w (O − k M(θ))² / n,   w = 1/(O + 1),

   over the rendered (ROI, mask), unsaturated pixels (refined structure factors add their
   restraint to the start, Σ ((F − F₀)/σ_F)² / n), first on b x b block averages
   (``stages``), then at full resolution; L-BFGS with a strong-Wolfe line search, or Adam.

The fit has converged when the last round of the last stage changed the loss by less than
:data:`CONVERGED` of the larger of the loss and 1 (the loss is a weighted chi-squared per
pixel, about 1 for a model that fits to within the noise, so that below 1 the change is
measured against the noise, not against a loss that may approach 0 on a noise-free image);
a result says whether it did.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from nbsim.errors import RefinementError, UsageError
from nbsim.refine.observed import Observation
from nbsim.refine.parameters import INERT_HINTS, UNITS, Coordinates, as_tuple, display
from nbsim.refine.spot_fit import SPOT_PARAMETERS, SpotFit
from nbsim.refine.spots import find_spots
from nbsim.simulation import Simulation

#: the change of the loss over a round, relative to max(loss, 1), below which a fit has converged
CONVERGED = 1e-6
#: L-BFGS iterations per round (a round ends with a convergence check)
ROUND = 20
#: a parameter of more values is summarized in the table
TABLE_VALUES = 12


@attrs.frozen
class RefineResult:
    names: tuple[str, ...]
    start: dict  # name -> list of values in display units
    refined: dict
    units: dict
    scale: float
    loss: list[float]
    evaluations: int
    seconds: float
    converged: bool = True
    spot_evaluations: int = 0

    def table(self) -> list[str]:
        rows = [f"{'parameter':<22s} {'start':>14s} {'refined':>14s} {'change':>12s}  unit"]
        for name in self.names:
            units = self.units[name]
            if len(self.start[name]) > TABLE_VALUES:  # structure factors: a summary, the values in --json
                change = [b - a for a, b in zip(self.start[name], self.refined[name])]
                rms = math.sqrt(sum(c * c for c in change) / len(change))
                rows.append(f"{name:<22s} {len(change)} values: rms change {rms:.6g}, largest "
                            f"{max(change, key=abs):.6g} {units[0]}".rstrip())
                continue
            for i, (a, b) in enumerate(zip(self.start[name], self.refined[name])):
                label = name if len(self.start[name]) == 1 else f"{name}[{i}]"
                rows.append(f"{label:<22s} {a:14.6f} {b:14.6f} {b - a:12.6f}  {units[i]}")
        rows.append(f"{'scale':<22s} {'':>14s} {self.scale:14.6g}")
        return rows

    def to_json(self) -> dict:
        return {
            "parameters": {n: {"start": self.start[n], "refined": self.refined[n], "unit": self.units[n]}
                           for n in self.names},
            "scale": self.scale, "loss": self.loss, "evaluations": self.evaluations,
            "spot_evaluations": self.spot_evaluations, "seconds": self.seconds, "converged": self.converged,
        }


class Refinement:
    """Fit ``names`` of ``sim`` to ``observed`` (a :class:`Observation`); with ``space_group``
    (a name or number gemmi knows) the cell keeps that crystal system's constraints.
    Refined structure factors are restrained to their start values with a relative standard
    deviation ``f_sigma`` (of the mean magnitude at least): the pixels fix only the reflections
    they see, and the overall scale, which is profiled, not at all."""

    def __init__(self, sim: Simulation, observed: Observation, names: Sequence[str], *,
                 space_group: str | None = None, f_sigma: float = 0.1):
        unknown = [n for n in names if n not in UNITS]
        if unknown:
            raise UsageError(f"--refine: unknown parameter(s) {', '.join(unknown)}; refinable: {', '.join(UNITS)}")
        if not names:
            raise UsageError("--refine: name at least one parameter")
        self.sim, self.observed, self.names = sim, observed, tuple(dict.fromkeys(names))
        try:
            start = {n: sim.initial(n) for n in self.names}
        except ValueError as exc:
            raise UsageError(f"--refine: {exc}") from None
        self.coords = Coordinates(start, space_group=space_group)
        self.evaluations = 0
        if not f_sigma > 0:
            raise UsageError(f"--f-sigma must be positive, got {f_sigma}")
        self.f_sigma = None
        if "structure_factors" in start:
            start_amplitudes = start["structure_factors"].abs()
            self.f_sigma = f_sigma * torch.maximum(start_amplitudes, start_amplitudes.mean().clamp_min(1e-30))

    @property
    def start(self) -> dict[str, Tensor]:
        return self.coords.start

    def params(self) -> dict[str, Tensor]:
        return self.coords.params()

    def loss(self, block: int = 1) -> tuple[Tensor, Tensor]:
        """(loss, profiled scale) of the current parameters, on b x b block averages."""
        self.evaluations += 1
        params = self.params()
        model = self.sim.image(params)
        O, valid = self.observed.counts, self.observed.valid.to(model.dtype)
        M = model * valid
        if block > 1:
            def pooled(x: Tensor) -> Tensor:
                return F.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), block, ceil_mode=True)

            O, M, valid = pooled(O), pooled(M), (pooled(valid) > 0).to(M.dtype)
        w = valid / (O.clamp_min(0) + 1.0)
        k = (w * O * M).sum() / (w * M * M).sum().clamp_min(1e-300)
        residual = (w * (O - k * M) ** 2).sum()
        if self.f_sigma is not None:
            amplitudes = params["structure_factors"]
            residual = residual + (((amplitudes - self.start["structure_factors"]) / self.f_sigma) ** 2).sum()
        return residual / valid.sum().clamp_min(1), k

    def inert(self) -> list[str]:
        """The parameters whose gradient at the start is exactly 0 everywhere: the image does not
        depend on them (a beam centre the convention ignores, a parameter of an unused model)."""
        return self._start()[0]

    def _start(self) -> tuple[list[str], float]:
        """(:meth:`inert`, the loss at the current parameters), from one evaluation."""
        value, _ = self.loss(1)
        grads = torch.autograd.grad(value, self.coords.leaves, allow_unused=True)
        return [n for n, g in zip(self.coords.u, grads) if g is None or not bool(torch.any(g != 0))], float(value.detach())

    def spot_stage(self, progress: Callable[[str], None] | None = None, exclude: Sequence[str] = ()) -> int:
        """The spot stage (:mod:`nbsim.refine.spot_fit`) for the geometric parameters refined;
        its evaluations (0 where it does not apply: no such parameter, a curved detector, too
        few spots)."""
        names = [n for n in self.names if n in SPOT_PARAMETERS and n not in exclude]
        if not names or self.sim.config.detector.curved:
            return 0
        spots = find_spots(self.observed.counts.detach().cpu().numpy(), self.observed.valid.cpu().numpy())
        fit = SpotFit(self.sim, spots, self.coords, names)
        fit.run(progress)
        return fit.evaluations

    def run(
        self,
        *,
        optimizer: str = "lbfgs",
        stages: Sequence[int] = (1,),
        iterations: int = 100,
        spots: bool = True,
        progress: Callable[[str], None] | None = None,
        warn: Callable[[str], None] = lambda text: None,
    ) -> RefineResult:
        """Fit: the spot stage (unless ``spots`` is false), then the pixel stages; ``warn`` hears
        of parameters the image does not depend on.

        :raises RefinementError: when a step reaches a model whose loss is NaN or infinite.
        """
        if optimizer not in ("lbfgs", "adam"):
            raise UsageError(f"--optimizer must be lbfgs or adam, got {optimizer!r}")
        started = time.perf_counter()
        inert, start_loss = self._start()
        history = [start_loss]  # before the spot stage
        for name in inert:
            warn(f"--refine {name}: the image does not depend on it here ({INERT_HINTS.get(name, 'its gradient is 0')}); "
                 "it keeps its starting value")
        spot_evaluations = self.spot_stage(progress, exclude=inert) if spots else 0
        leaves = self.coords.leaves
        converged = False
        for block in stages:
            if optimizer == "lbfgs":
                opt = torch.optim.LBFGS(leaves, lr=1, max_iter=ROUND, line_search_fn="strong_wolfe",
                                        tolerance_grad=1e-10, tolerance_change=1e-14, history_size=20)
                rounds = max(1, iterations // ROUND)
            else:
                opt = torch.optim.Adam(leaves, lr=0.5)
                rounds = iterations

            def closure():
                opt.zero_grad()
                value, _ = self.loss(block)
                value.backward()
                return value

            converged, previous = False, None
            for r in range(rounds):
                last = self.coords.snapshot()
                value = float(opt.step(closure).detach())
                if not math.isfinite(value) or not all(torch.isfinite(u).all() for u in leaves):
                    self.coords.restore(last)
                    at = ", ".join(f"{n} {' '.join('%.6g' % x for x in display(n, p))}"
                                   for n, p in self.params().items())
                    raise RefinementError(f"refine: the loss became {value} at stage {block}x{block}, step {r + 1}, "
                                          f"after {self.evaluations} evaluations (an impossible model); the last "
                                          f"finite parameters: {at}; start closer or refine fewer parameters")
                converged = previous is not None and abs(previous - value) <= CONVERGED * max(abs(value), 1.0)
                previous = value
                history.append(value)
                if progress:
                    progress(f"stage {block}x{block}  step {r + 1:3d}/{rounds}  loss {value:.6g}  "
                             f"evaluations {self.evaluations}  {time.perf_counter() - started:6.1f} s")
                if converged and optimizer == "lbfgs":
                    break
        with torch.no_grad():
            final, scale = self.loss(1)
        history.append(float(final))
        params = self.params()
        units = {n: list(as_tuple(UNITS[n].unit, self.start[n].numel())) for n in self.names}
        return RefineResult(
            names=self.names, start={n: display(n, self.start[n]) for n in self.names},
            refined={n: display(n, params[n]) for n in self.names}, units=units, scale=float(scale),
            loss=history, evaluations=self.evaluations, seconds=time.perf_counter() - started,
            converged=converged, spot_evaluations=spot_evaluations,
        )
