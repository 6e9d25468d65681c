"""The reference program's random-number generators, bit for bit (``specs/random.md``).

``Ran1`` is the Park-Miller minimal standard generator with a 32-entry Bays-Durham shuffle
table.  Its table is shared by every seed variable of a run (the reference keeps it in static
storage), so one ``Ran1`` object is threaded through the stages in the reference order:
random misset, mosaic domains, noise image.  A seed variable is "fresh" while it is <= 0; its
first use re-initialises the shared table.

Single-precision steps are reproduced with numpy float32 scalars; ``powf`` is evaluated in
double and rounded once (numpy's float32 power can be one ulp off libm's).
"""

from __future__ import annotations

import math

import numpy as np

IA, IM, IQ, IR, NTAB = 16807, 2147483647, 127773, 2836, 32
NDIV = 1 + (IM - 1) // NTAB
AM = 1.0 / IM
RNMX_F32 = np.float32(1.0 - 1.2e-7)
f32 = np.float32


def _lehmer(x: int) -> int:
    k = x // IQ
    x = IA * (x - k * IQ) - IR * k
    if x < 0:
        x += IM
    return x


class Ran1:
    """Uniform deviates in (0, 1) with the reference program's shared shuffle table."""

    def __init__(self) -> None:
        self.iy = 0
        self.iv = [0] * NTAB

    def draw(self, seed: list[int]) -> float:
        """One deviate; ``seed`` is a one-element list holding the caller's seed variable."""
        idum = seed[0]
        if idum <= 0 or self.iy == 0:
            idum = 1 if -idum < 1 else -idum
            for j in range(NTAB + 7, -1, -1):
                idum = _lehmer(idum)
                if j < NTAB:
                    self.iv[j] = idum
            self.iy = self.iv[0]
        idum = _lehmer(idum)
        j = self.iy // NDIV
        self.iy = self.iv[j]
        self.iv[j] = idum
        seed[0] = idum
        temp = f32(AM * self.iy)
        return float(RNMX_F32 if temp > RNMX_F32 else temp)


def powf(x: np.float32, y: np.float32) -> np.float32:
    """Correctly rounded single-precision power, as C's libm ``powf``."""
    return f32(math.pow(float(x), float(y)))


def mosaic_draw(mosaicity: float, rng: Ran1, seed: list[int]) -> tuple[tuple[float, float, float], float]:
    """The (unit axis, angle in radians) of one random rotation by up to ``mosaicity``."""
    r1 = 2.0 * rng.draw(seed) - 1.0
    r2 = 2.0 * rng.draw(seed) - 1.0
    r3 = 2.0 * rng.draw(seed) - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    mos = f32(mosaicity)
    rot = float(f32(mos * powf(f32(1.0 - r3 * r3), f32(1.0 / 3.0))))
    return (xyrad * math.sin(math.pi * r1), xyrad * math.cos(math.pi * r1), r2), rot


def axis_angle_matrix(axis, rot: float) -> np.ndarray:
    """Rotation matrix (row-major) about a unit axis, with the reference's operation order."""
    v1, v2, v3 = axis
    t1 = math.cos(rot)
    t2 = 1.0 - t1
    t3 = v1 * v1
    t6 = t2 * v1
    t7 = t6 * v2
    t8 = math.sin(rot)
    t9 = t8 * v3
    t11 = t6 * v3
    t12 = t8 * v2
    t15 = v2 * v2
    t19 = t2 * v2 * v3
    t20 = t8 * v1
    t24 = v3 * v3
    return np.array(
        [
            [t1 + t2 * t3, t7 - t9, t11 + t12],
            [t7 + t9, t1 + t2 * t15, t19 - t20],
            [t11 - t12, t19 + t20, t1 + t2 * t24],
        ],
        dtype=np.float64,
    )


def mosaic_rotation_umat(mosaicity: float, rng: Ran1, seed: list[int]) -> np.ndarray:
    """A random rotation (3x3, row-major) by up to ``mosaicity`` radians about a random axis."""
    return axis_angle_matrix(*mosaic_draw(mosaicity, rng, seed))


def umat2misset(u: np.ndarray) -> tuple[float, float, float]:
    """Angles (rx, ry, rz) in radians with U = Rz·Ry·Rx, as the reference extracts them."""
    rows = [list(map(float, r)) for r in u]
    for _ in range(2):
        rows = [_unit_row(r) for r in rows]
    (uxx, uxy, uxz), (uyx, uyy, uyz), (uzx, uzy, uzz) = rows
    if uzx * uzx < 1.0:
        rotx = math.atan2(uzy, uzz)
        roty = math.atan2(-uzx, math.sqrt(uzy * uzy + uzz * uzz))
        rotz = math.atan2(uyx, uxx)
    else:
        rotx = math.atan2(1, 1) * 4
        roty = math.atan2(1, 1) * 2
        rotz = math.atan2(uxy, -uyy)
    return rotx, roty, rotz


def _unit_row(r: list[float]) -> list[float]:
    m = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    return [x / m for x in r] if m > 0 else r


#: domains drawn between two progress reports (about 0.3 s)
PROGRESS_DOMAINS = 1 << 16


def mosaic_domains(spread: float, domains: int, rng: Ran1, seed: list[int],
                   progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Domain rotations drawn in order, domain 0 then set to the identity.

    Returns (umats (domains, 3, 3), axes (domains, 3), angles (domains,)); domain 0 has
    angle 0, so that rotations can be rebuilt for another spread from the same draws.
    ``progress(done, total)`` is called every ``PROGRESS_DOMAINS`` domains when there are more.
    """
    report = progress is not None and domains > PROGRESS_DOMAINS
    umats = np.empty((domains, 3, 3), dtype=np.float64)
    axes = np.empty((domains, 3), dtype=np.float64)
    angles = np.empty(domains, dtype=np.float64)
    for d in range(domains):
        axis, rot = mosaic_draw(spread, rng, seed)
        umats[d], axes[d], angles[d] = axis_angle_matrix(axis, rot), axis, rot
        if report and (d + 1) % PROGRESS_DOMAINS == 0:
            progress(d + 1, domains)
    if report:
        progress(domains, domains)
    umats[0] = np.eye(3)
    angles[0] = 0.0
    return umats, axes, angles


def gaussdev(rng: Ran1, seed: list[int], state: dict) -> np.float32:
    """Standard normal deviate (Marsaglia polar method) with the reference's spare value."""
    if not state.get("iset"):
        while True:
            v1 = f32(2.0 * rng.draw(seed) - 1.0)
            v2 = f32(2.0 * rng.draw(seed) - 1.0)
            rsq = f32(f32(v1 * v1) + f32(v2 * v2))
            if not (rsq >= 1.0 or rsq == 0):
                break
        fac = f32(math.sqrt(-2.0 * math.log(float(rsq)) / float(rsq)))
        state["gset"] = f32(v1 * fac)
        state["iset"] = True
        return f32(v2 * fac)
    state["iset"] = False
    return state["gset"]


_COF = (76.18009172947146, -86.50532032941677, 24.01409824083091,
        -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5)


def gammln(xx: np.float32) -> np.float32:
    x = y = float(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for c in _COF:
        y += 1
        ser += c / y
    return f32(-tmp + math.log(2.5066282746310005 * ser / x))


def poidev(xm: np.float32, rng: Ran1, seed: list[int], gauss_state: dict) -> float:
    """Poisson deviate of mean ``xm`` exactly as the reference draws it (float in, float out)."""
    xm = f32(xm)
    if xm > 1.0e6:
        return float(f32(float(xm) + math.sqrt(float(xm)) * float(gaussdev(rng, seed, gauss_state))))
    if xm < 12.0:
        g = f32(math.exp(-float(xm)))
        em = -1
        t = f32(1.0)
        while True:
            em += 1
            t = f32(t * f32(rng.draw(seed)))
            if not t > g:
                break
        return float(em)
    sq = f32(math.sqrt(2.0 * float(xm)))
    alxm = f32(math.log(float(xm)))
    g = f32(f32(xm * alxm) - gammln(f32(float(xm) + 1.0)))
    while True:
        while True:
            y = f32(math.tan(math.pi * rng.draw(seed)))
            em = f32(f32(sq * y) + xm)
            if not em < 0.0:
                break
        em = f32(math.floor(em))
        e = f32(f32(f32(em * alxm) - gammln(f32(float(em) + 1.0))) - g)
        t = f32(0.9 * (1.0 + float(f32(y * y))) * math.exp(float(e)))
        if not rng.draw(seed) > t:
            return float(em)
