"""Compiled (numba) kernels of the counter-based generator (:mod:`nbsim.physics.counter_random`).

Draw ``d`` of element ``j`` under key ``key`` is the SplitMix64 output at position
``n = j + d * 2**40`` of the sequence that starts at ``key``: ``mix(key + (n + 1) * GAMMA)``.
The first draws of consecutive elements are consecutive outputs of the sequence (the rare
further draws of a rejection come from positions 2**40 apart); images up to 2**40 elements.
Nothing is carried from one element to the next, so the elements are filled in parallel
blocks and any block (a chunk, a panel, a region of interest) can be drawn alone.
Imported only once numba is set up (:func:`nbsim.physics.jit.numba`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_DRAW_SHIFT = np.uint64(40)
_ONE = np.uint64(1)
_SIGN_BIT = np.uint64(1 << 8)
_LAYER = np.uint64(0xFF)
_MAGNITUDE_SHIFT = np.uint64(9)
_UNIFORM_SHIFT = np.uint64(11)
_TO_UNIT = 2.0 ** -53
#: elements per parallel block: large enough to amortise a task, small enough to balance
BLOCK = 1 << 14


@njit(inline="always")
def mix(z):
    """The SplitMix64 finaliser (Stafford's variant 13): a bijection of 64-bit words."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always")
def bits(key, element, draw):
    """64 random bits: draw ``draw`` (< 2**24) of element ``element`` (< 2**40) under ``key``."""
    n = np.uint64(element) + (np.uint64(draw) << _DRAW_SHIFT)
    return mix(key + (n + _ONE) * GAMMA)


@njit(inline="always")
def uniform(key, element, draw):
    """A uniform deviate in the open interval (0, 1): 53 random bits, centred in their step."""
    return (np.float64(bits(key, element, draw) >> _UNIFORM_SHIFT) + 0.5) * _TO_UNIT


@njit(inline="always")
def normal(key, element, x, f, k, r):
    """A standard normal deviate by Marsaglia and Tsang's ziggurat of 256 layers (tables ``x``
    (right edges, x[0] the base's equivalent width, x[256] = 0), ``f`` = exp(-x^2/2) at those
    edges, ``k`` the fast-acceptance thresholds, ``r`` = x[1], where the tail starts)."""
    draw = 0
    while True:
        word = bits(key, element, draw)
        draw += 1
        layer = np.int64(word & _LAYER)
        magnitude = word >> _MAGNITUDE_SHIFT  # 55 bits
        value = np.float64(magnitude) * (x[layer] * 2.0 ** -55)
        if magnitude < k[layer]:  # inside the layer's rectangle, under the curve (99% of draws)
            break
        if layer == 0:  # the base layer beyond r: Marsaglia's tail
            while True:
                a = -math.log(uniform(key, element, draw)) / r
                b = -math.log(uniform(key, element, draw + 1))
                draw += 2
                if b + b > a * a:
                    break
            value = r + a
            break
        # the wedge between the layer's rectangle and the curve
        height = f[layer] + uniform(key, element, draw) * (f[layer + 1] - f[layer])
        draw += 1
        if height < math.exp(-0.5 * value * value):
            break
    return -value if word & _SIGN_BIT else value


@njit(parallel=True, cache=True)
def fill_normal(key, offset, out, x, f, k, r):
    """``out[i]`` = the normal deviate of element ``offset + i``."""
    n = out.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        for i in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            out[i] = normal(key, offset + i, x, f, k, r)


@njit(parallel=True, cache=True)
def fill_uniform(key, offset, out):
    """``out[i]`` = the uniform deviate of element ``offset + i``."""
    n = out.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        for i in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            out[i] = uniform(key, offset + i, 0)


#: Poisson means below this are drawn by inversion, above it by transformed rejection
INVERSION_BELOW = 10.0


@njit(inline="always")
def poisson(key, element, mean, reciprocals, log_factorials):
    """A Poisson deviate of ``mean`` (0 for a mean that is not positive or is NaN).

    Below :data:`INVERSION_BELOW`: inversion of one uniform by sequential search of the
    cumulative distribution.  Above: Hörmann's transformed rejection with squeeze (PTRS, 1993),
    log k! from ``log_factorials`` where tabulated, else ``lgamma``."""
    if not mean > 0.0:
        return 0.0
    if mean < INVERSION_BELOW:
        u = uniform(key, element, 0)
        term = math.exp(-mean)
        total = term
        count = 0
        # the cap guards against a sum that rounding keeps below u; it is never reached else
        while u > total and count < 1000:
            count += 1
            term *= mean * reciprocals[count] if count < reciprocals.shape[0] else mean / count
            total += term
        return np.float64(count)
    b = 0.931 + 2.53 * math.sqrt(mean)
    a = -0.059 + 0.02483 * b
    vr = 0.9277 - 3.6224 / (b - 2.0)
    draw = 0
    while True:
        u = uniform(key, element, draw) - 0.5
        v = uniform(key, element, draw + 1)
        draw += 2
        us = 0.5 - abs(u)
        count = np.float64(math.floor((2.0 * a / us + b) * u + mean + 0.43))
        if us >= 0.07 and v <= vr:  # the squeeze: accepted without the density (86% of draws)
            return count
        if count < 0.0 or (us < 0.013 and v > us):
            continue
        n = np.int64(count)
        log_factorial = log_factorials[n] if n < log_factorials.shape[0] else math.lgamma(count + 1.0)
        log_inv_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
        if math.log(v) + log_inv_alpha - math.log(a / (us * us) + b) <= -mean + count * math.log(mean) - log_factorial:
            return count


@njit(parallel=True, cache=True, fastmath={"contract", "arcp", "afn", "reassoc"})
def fill_poisson(key, offset, means, out, reciprocals, log_factorials):
    """``out[i]`` = a Poisson deviate of ``means[i]``, element ``offset + i``."""
    n = out.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        for i in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            out[i] = poisson(key, offset + i, np.float64(means[i]), reciprocals, log_factorials)
