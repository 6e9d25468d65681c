"""Refine model parameters against an observed image (``nbsim refine``, ``docs/refinement.md``).

The model is a :class:`~nbsim.simulation.Simulation`; the refined parameters are written
``start + step*u`` with a step per parameter (``UNITS``), so that the optimizer works on
dimensionless, comparably scaled variables.  The loss is the Poisson-weighted squared
residual with the overall scale factor profiled out (solved in closed form at every
evaluation, so it is always refined):

    k(θ) = Σ w O M(θ) / Σ w M(θ)²,   L(θ) = Σ w (O − k M(θ))² / n,   w = 1/(O + 1),

over the pixels that are rendered (ROI, mask) and not saturated.  Optional coarse stages
compare images averaged over b x b blocks first, which widens the basin of convergence.
Optimizers: L-BFGS with a strong-Wolfe line search (default) or Adam.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nbsim.errors import InputError, RefinementError, UsageError
from nbsim.io import read_bytes, smv
from nbsim.simulation import Simulation


@attrs.frozen
class Unit:
    """How a parameter is shown (value_in_unit = si * factor) and its optimizer step (SI)."""

    factor: float | tuple[float, ...]
    unit: str | tuple[str, ...]
    step: float | tuple[float, ...]


DEG = 180.0 / math.pi
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
}


@attrs.frozen(eq=False)
class Observation:
    """Observed counts (spixels, fpixels) and the mask of pixels the loss uses."""

    counts: Tensor
    valid: Tensor
    path: str


def read_observed(path: str, sim: Simulation) -> Observation:
    """An SMV image (its ADC offset, the model's ``-adc``, removed) or a float32 image."""
    spixels, fpixels = sim.shape
    if read_bytes(path, "--observed")[:12] == b"{\nHEADER_BYT":
        frame = smv.read(path, flag="--observed", with_pixels=True)
        if (frame.height, frame.width) != (spixels, fpixels):
            raise InputError(f"--observed: {path} is {frame.width}x{frame.height}, the model {fpixels}x{spixels}")
        raw = frame.pixels.astype(np.float64)
        counts = raw - sim.config.output.adc_offset
        valid = (raw > 0) & (raw < 65535)
    else:
        data = np.fromfile(path, dtype="<f4")
        if data.size != spixels * fpixels:
            raise InputError(f"--observed: {path} holds {data.size} floats, the model has {fpixels}x{spixels} pixels")
        counts = data.reshape(spixels, fpixels).astype(np.float64)
        valid = np.isfinite(counts)
    rendered = np.zeros(spixels * fpixels, dtype=bool)
    rendered[sim.model().rendered.cpu().numpy()] = True
    valid &= rendered.reshape(spixels, fpixels)
    return Observation(torch.as_tensor(np.where(valid, counts, 0.0), dtype=sim.dtype, device=sim.device),
                       torch.as_tensor(valid, device=sim.device), path)


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

    def table(self) -> list[str]:
        rows = [f"{'parameter':<22s} {'start':>14s} {'refined':>14s} {'change':>12s}  unit"]
        for name in self.names:
            units = self.units[name]
            for i, (a, b) in enumerate(zip(self.start[name], self.refined[name])):
                label = name if len(self.start[name]) == 1 else f"{name}[{i}]"
                rows.append(f"{label:<22s} {a:14.6f} {b:14.6f} {b - a:12.6f}  {units[i]}")
        rows.append(f"{'scale':<22s} {'':>14s} {self.scale:14.6g}")
        return rows

    def to_json(self) -> dict:
        return {
            "parameters": {n: {"start": self.start[n], "refined": self.refined[n], "unit": self.units[n]}
                           for n in self.names},
            "scale": self.scale, "loss": self.loss, "evaluations": self.evaluations, "seconds": self.seconds,
        }


def _as_tuple(x, n):
    return tuple(x) if isinstance(x, tuple) else (x,) * n


def _display(name: str, value: Tensor) -> list[float]:
    v = value.detach().cpu().reshape(-1).tolist()
    factors = _as_tuple(UNITS[name].factor, len(v))
    return [x * f for x, f in zip(v, factors)]


#: what to refine instead of a parameter the image does not depend on, where that is known
INERT_HINTS = {
    "beam_center": "under the XDS and DIALS conventions -Xbeam/-Ybeam do not move the detector, which -ORGX/-ORGY "
                   "place; refine distance and detector_rotation, or use -mosflm",
}


class Refinement:
    """Fit ``names`` of ``sim`` to ``observed`` (a :class:`Observation`)."""

    def __init__(self, sim: Simulation, observed: Observation, names: Sequence[str]):
        unknown = [n for n in names if n not in UNITS]
        if unknown:
            raise UsageError(f"--refine: unknown parameter(s) {', '.join(unknown)}; refinable: {', '.join(UNITS)}")
        if not names:
            raise UsageError("--refine: name at least one parameter")
        self.sim, self.observed, self.names = sim, observed, tuple(names)
        try:
            self.start = {n: sim.initial(n) for n in self.names}
        except ValueError as exc:
            raise UsageError(f"--refine: {exc}") from None
        self.steps = {n: torch.as_tensor(UNITS[n].step, dtype=sim.dtype, device=sim.device)
                      .expand_as(self.start[n]).clone() for n in self.names}
        self.u = {n: torch.zeros_like(self.start[n], requires_grad=True) for n in self.names}
        self.evaluations = 0

    def params(self) -> dict[str, Tensor]:
        return {n: self.start[n] + self.steps[n] * self.u[n] for n in self.names}

    def loss(self, block: int = 1) -> tuple[Tensor, Tensor]:
        """(loss, profiled scale) of the current parameters, on b x b block averages."""
        self.evaluations += 1
        model = self.sim.image(self.params())
        O, valid = self.observed.counts, self.observed.valid.to(model.dtype)
        M = model * valid
        if block > 1:
            O = F.avg_pool2d(O[None, None], block, ceil_mode=True)[0, 0]
            M = F.avg_pool2d(M[None, None], block, ceil_mode=True)[0, 0]
            valid = F.avg_pool2d(valid[None, None], block, ceil_mode=True)[0, 0] > 0
            valid = valid.to(M.dtype)
        w = valid / (O.clamp_min(0) + 1.0)
        k = (w * O * M).sum() / (w * M * M).sum().clamp_min(1e-300)
        return (w * (O - k * M) ** 2).sum() / valid.sum().clamp_min(1), k

    def inert(self) -> list[str]:
        """The parameters whose gradient at the start is exactly 0 everywhere: the image does not
        depend on them (a beam centre the convention ignores, a parameter of an unused model)."""
        value, _ = self.loss(1)
        grads = torch.autograd.grad(value, list(self.u.values()), allow_unused=True)
        return [n for n, g in zip(self.u, grads) if g is None or not bool(torch.any(g != 0))]

    def run(
        self,
        *,
        optimizer: str = "lbfgs",
        stages: Sequence[int] = (4, 1),
        iterations: int = 60,
        progress: Callable[[str], None] | None = None,
        warn: Callable[[str], None] = lambda text: None,
    ) -> RefineResult:
        """Fit, stage by stage; ``warn`` hears of parameters the image does not depend on.

        :raises RefinementError: when a step reaches a model whose loss is NaN or infinite.
        """
        started = time.perf_counter()
        history: list[float] = []
        leaves = list(self.u.values())
        for name in self.inert():
            warn(f"--refine {name}: the image does not depend on it here ({INERT_HINTS.get(name, 'its gradient is 0')}); "
                 "it keeps its starting value")
        for block in stages:
            if optimizer == "lbfgs":
                opt = torch.optim.LBFGS(leaves, lr=1, max_iter=20, line_search_fn="strong_wolfe",
                                        tolerance_grad=1e-10, tolerance_change=1e-14, history_size=20)
                rounds = max(1, iterations // 20)
            elif optimizer == "adam":
                opt = torch.optim.Adam(leaves, lr=0.5)
                rounds = iterations
            else:
                raise UsageError(f"--optimizer must be lbfgs or adam, got {optimizer!r}")

            def closure():
                opt.zero_grad()
                value, _ = self.loss(block)
                value.backward()
                return value

            for r in range(rounds):
                last = {n: u.detach().clone() for n, u in self.u.items()}
                value = float(opt.step(closure).detach())
                if not math.isfinite(value) or not all(torch.isfinite(u).all() for u in self.u.values()):
                    with torch.no_grad():
                        for n, u in self.u.items():
                            u.copy_(last[n])
                    at = ", ".join(f"{n} {' '.join('%.6g' % x for x in _display(n, p))}"
                                   for n, p in self.params().items())
                    raise RefinementError(f"refine: the loss became {value} at stage {block}x{block}, step {r + 1}, "
                                          f"after {self.evaluations} evaluations (an impossible model); the last "
                                          f"finite parameters: {at}; start closer or refine fewer parameters")
                history.append(value)
                if progress:
                    progress(f"stage {block}x{block}  step {r + 1:3d}/{rounds}  loss {value:.6g}  "
                             f"evaluations {self.evaluations}  {time.perf_counter() - started:6.1f} s")
                if optimizer == "lbfgs" and len(history) > 1 and abs(history[-2] - value) <= 1e-12 * abs(value):
                    break
        with torch.no_grad():
            final, scale = self.loss(1)
        history.append(float(final))
        params = self.params()
        units = {n: list(_as_tuple(UNITS[n].unit, self.start[n].numel())) for n in self.names}
        return RefineResult(
            names=self.names, start={n: _display(n, self.start[n]) for n in self.names},
            refined={n: _display(n, params[n]) for n in self.names}, units=units, scale=float(scale),
            loss=history, evaluations=self.evaluations, seconds=time.perf_counter() - started,
        )
