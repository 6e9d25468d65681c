"""Compiled (numba) version of the reference noise generator: ran1, gaussdev, gammln, poidev.

Same arithmetic as :mod:`nbsim.physics.rng`, with explicit float32 roundings, compiled so that a
4096 x 4096 noise image takes seconds.  Imported only when numba is available.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from nbsim.physics.rng import AM, IA, IM, IQ, IR, NDIV, NTAB

RNMX32 = np.float32(1.0 - 1.2e-7)
_COF = np.array([76.18009172947146, -86.50532032941677, 24.01409824083091,
                 -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5])


@njit(cache=True)
def _lehmer(x):
    k = x // IQ
    x = IA * (x - k * IQ) - IR * k
    if x < 0:
        x += IM
    return x


@njit(cache=True)
def _ran1(state, iv):
    """state = [idum, iy]; iv = shuffle table (int64)."""
    idum = state[0]
    iy = state[1]
    if idum <= 0 or iy == 0:
        if -idum < 1:
            idum = 1
        else:
            idum = -idum
        for j in range(NTAB + 7, -1, -1):
            idum = _lehmer(idum)
            if j < NTAB:
                iv[j] = idum
        iy = iv[0]
    idum = _lehmer(idum)
    j = iy // NDIV
    iy = iv[j]
    iv[j] = idum
    state[0] = idum
    state[1] = iy
    temp = np.float32(AM * iy)
    if temp > RNMX32:
        return RNMX32
    return temp


@njit(cache=True)
def _gaussdev(state, iv, gauss):
    """gauss = [iset, gset] (float32 array)."""
    if gauss[0] == 0:
        while True:
            v1 = np.float32(2.0 * np.float64(_ran1(state, iv)) - 1.0)
            v2 = np.float32(2.0 * np.float64(_ran1(state, iv)) - 1.0)
            rsq = np.float32(np.float32(v1 * v1) + np.float32(v2 * v2))
            if not (rsq >= 1.0 or rsq == 0):
                break
        fac = np.float32(math.sqrt(-2.0 * math.log(np.float64(rsq)) / np.float64(rsq)))
        gauss[1] = np.float32(v1 * fac)
        gauss[0] = 1
        return np.float32(v2 * fac)
    gauss[0] = 0
    return gauss[1]


@njit(cache=True)
def _gammln(xx):
    x = np.float64(xx)
    y = x
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for j in range(6):
        y += 1.0
        ser += _COF[j] / y
    return np.float32(-tmp + math.log(2.5066282746310005 * ser / x))


@njit(cache=True)
def _poidev(xm, state, iv, gauss):
    if xm > 1.0e6:
        return np.float64(np.float32(np.float64(xm) + math.sqrt(np.float64(xm)) * np.float64(_gaussdev(state, iv, gauss))))
    if xm < 12.0:
        g = np.float32(math.exp(-np.float64(xm)))
        em = -1
        t = np.float32(1.0)
        while True:
            em += 1
            t = np.float32(t * _ran1(state, iv))
            if not (t > g):
                break
        return np.float64(em)
    sq = np.float32(math.sqrt(2.0 * np.float64(xm)))
    alxm = np.float32(math.log(np.float64(xm)))
    g = np.float32(np.float32(xm * alxm) - _gammln(np.float32(np.float64(xm) + 1.0)))
    while True:
        while True:
            y = np.float32(math.tan(math.pi * np.float64(_ran1(state, iv))))
            em = np.float32(np.float32(sq * y) + xm)
            if not (em < 0.0):
                break
        em = np.float32(math.floor(em))
        e = np.float32(np.float32(np.float32(em * alxm) - _gammln(np.float32(np.float64(em) + 1.0))) - g)
        t = np.float32(0.9 * (1.0 + np.float64(np.float32(y * y))) * math.exp(np.float64(e)))
        if not (_ran1(state, iv) > t):
            return np.float64(em)


@njit(cache=True)
def poisson_stream(means, state, iv):
    """Poisson deviates of float32 ``means`` in order; ``state``/``iv`` are updated in place."""
    out = np.empty(means.shape[0], dtype=np.float64)
    gauss = np.zeros(2, dtype=np.float32)
    for i in range(means.shape[0]):
        out[i] = _poidev(means[i], state, iv, gauss)
    return out
