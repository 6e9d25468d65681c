"""nbsim's counter-based random numbers: every value is a function of (seed, element index).

A draw does not depend on what was drawn before it, so an image's random values are the same
whether it is made whole, in chunks, panel by panel, on one thread or many, on the CPU or
another device (the values are made on the CPU and moved).  This is the generator of the
detector responses (``specs/responses.md``) and of ``--noise-rng parallel``; the reference
program's serial generator (:mod:`nbsim.physics.rng`) stays the default of the noise image.

The bits are SplitMix64's (Steele, Lea and Flood 2014): element ``j``'s draw ``d`` is the
sequence's output at position ``j + d * 2**40`` from the key, the key being SplitMix64's first
output for the seed (``specs/random.md``).  Normal deviates by a 256-layer ziggurat
(Marsaglia and Tsang 2000), Poisson deviates by inversion below a mean of 10 and by
transformed rejection (Hörmann 1993) above.  The compiled kernels are in
:mod:`nbsim.physics.counter_random_loop`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15

#: the ziggurat's 256 layers: the tail starts at R; every layer has area V
_LAYERS, _R, _V = 256, 3.6541528853610088, 0.00492867323399


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def key_of(seed: int) -> int:
    """The generator's key for ``seed`` (any integer, taken modulo 2**64): SplitMix64's first
    output from it, so that neighbouring seeds give unrelated streams."""
    return _mix((int(seed) + _GAMMA) & _MASK)


@functools.cache
def _ziggurat() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (257,), f (257,), k (256,) uint64): right edges of the layers from the base up (x[0] is
    the base's width V / f(R), which holds the tail; x[1] = R; x[256] = 0), exp(-x^2/2) at
    them, and the 55-bit thresholds below which a draw lies inside its layer's rectangle."""
    x = np.zeros(_LAYERS + 1)
    x[0], x[1] = _V / math.exp(-0.5 * _R * _R), _R
    for i in range(1, _LAYERS - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(_V / x[i] + math.exp(-0.5 * x[i] * x[i])))
    f = np.exp(-0.5 * x * x)
    k = np.array([int(x[i + 1] / x[i] * 2.0 ** 55) for i in range(_LAYERS)], dtype=np.uint64)
    return x, f, k


@functools.cache
def _poisson_tables() -> tuple[np.ndarray, np.ndarray]:
    """(1/n for n < 256 (1/0 as 0), log n! for n < 1024)."""
    n = np.arange(256, dtype=np.float64)
    reciprocals = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
    log_factorials = np.array([math.lgamma(m + 1.0) for m in range(1024)])
    return reciprocals, log_factorials


@functools.cache
def _kernels():
    from nbsim.physics import jit

    if jit.numba() is None:  # pragma: no cover - numba is a dependency
        raise RuntimeError("nbsim's parallel random numbers need numba")
    from nbsim.physics import counter_random_loop

    return counter_random_loop


_NUMPY = {torch.float64: np.float64, torch.float32: np.float32}


class CounterRandom:
    """Random values of a seed, element by element: element ``offset + i`` of a call is the
    same number whatever the call's size.  Values are made on the CPU in float64 (float32
    outputs are rounded from them) and moved to the requested device."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.key = np.uint64(key_of(seed))

    def __repr__(self) -> str:
        return f"CounterRandom(seed={self.seed})"

    def _out(self, shape, dtype) -> np.ndarray:
        if dtype not in _NUMPY:
            raise TypeError(f"random values come as float32 or float64, not {dtype}")
        return np.empty(int(np.prod(shape, dtype=np.int64)), dtype=_NUMPY[dtype])

    def normal(self, shape, *, dtype=torch.float64, device="cpu", offset: int = 0) -> Tensor:
        """Standard normal deviates of elements ``offset ...`` in ``shape``."""
        out = self._out(shape, dtype)
        x, f, k = _ziggurat()
        _kernels().fill_normal(self.key, np.int64(offset), out, x, f, k, _R)
        return torch.from_numpy(out).reshape(tuple(shape)).to(device)

    def uniform(self, shape, *, dtype=torch.float64, device="cpu", offset: int = 0) -> Tensor:
        """Uniform deviates in (0, 1) of elements ``offset ...`` in ``shape``."""
        out = self._out(shape, dtype)
        _kernels().fill_uniform(self.key, np.int64(offset), out)
        return torch.from_numpy(out).reshape(tuple(shape)).to(device)

    def poisson(self, means: Tensor, *, offset: int = 0) -> Tensor:
        """A Poisson deviate of each of ``means`` (0 where a mean is not positive), elements
        ``offset ...`` in ``means``' order; the dtype and device of ``means``."""
        source = means.detach().to("cpu").contiguous().reshape(-1).numpy()
        out = self._out(means.shape, means.dtype)
        reciprocals, log_factorials = _poisson_tables()
        _kernels().fill_poisson(self.key, np.int64(offset), source, out, reciprocals, log_factorials)
        return torch.from_numpy(out).reshape(means.shape).to(means.device)
