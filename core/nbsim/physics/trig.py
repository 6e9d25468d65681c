"""sin(πt) with exact argument reduction, for the lattice factor's hot loop.

t = k + r with k = round(t) and r = t − k computed exactly (|r| ≤ 1/2), then
sin(πt) = (−1)^k sin(πr), the last from its Taylor series (degree 21 in double precision,
truncation below 2e-18; degree 13 in single precision).  Two reasons to use it:

* accuracy in single precision: the reduction happens in the precision of t (double), so
  only |r| ≤ 1/2 is rounded to float32, where sin(π·h) of a float32 h near 50 would lose
  most of its digits;
* speed when compiled: the polynomial is plain multiply-adds that a compiler vectorizes,
  where a double-precision library sine call may not be.

It agrees with ``torch.sin(math.pi * t)`` to a few ulps (better, for large t near integers).
Only compiled code uses it: in eager mode its dozen elementwise passes cost more than the
library sine they replace.
"""

from __future__ import annotations

import torch
from torch import Tensor

_SINPI64 = (3.141592653589793, -5.16771278004997, 2.5501640398773455, -0.5992645293207921,
            0.08214588661112823, -0.0073704309457143504, 0.00046630280576761255, -2.1915353447830217e-05,
            7.952054001475513e-07, -2.2948428997269873e-08, 5.392664662608129e-10)
_SINPI32 = _SINPI64[:7]


def _parity(k: Tensor) -> Tensor:
    """k mod 2 (0 or 1) for integer-valued k."""
    return k - 2.0 * torch.floor(k * 0.5)


def _sinpi_reduced(k: Tensor, r: Tensor) -> Tensor:
    """sin(π (k + r)) for integer-valued k and |r| <= 1/2, in r's dtype."""
    sign = (1.0 - 2.0 * _parity(k)).to(r.dtype)
    r2 = torch.square(r)  # one read of r: compiled code re-evaluates an inlined value at each read
    coefs = _SINPI64 if r.dtype == torch.float64 else _SINPI32
    p = torch.full_like(r2, coefs[-1])
    for c in reversed(coefs[:-1]):
        p = p * r2 + c
    return r * p * sign


def _reduce(t: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(k, r): t = k + r with k = round(t), exactly in t's precision, r then in ``dtype``."""
    k = torch.round(t)
    return k, (t - k).to(dtype)


def _reduce_sum(whole: Tensor, part: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(k, r) of t = whole + part, ``whole`` integer-valued, without forming t."""
    k = torch.round(part)
    return whole + k, (part - k).to(dtype)


def sinpi(t: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """sin(π t) evaluated in ``dtype`` (default: t's) after an exact reduction in t's precision."""
    return _sinpi_reduced(*_reduce(t, dtype or t.dtype))


def sincg_pi(h: Tensor, n: Tensor) -> Tensor:
    """sin(π N h)/sin(π h) in n's dtype, N at integer h (with the sign of the limit).

    ``h`` may be in higher precision than ``n``: the products N·h and the reductions are done
    in h's precision.
    """
    dtype = n.dtype
    k, r_wide = _reduce(h, h.dtype)
    n_wide = n.to(h.dtype)
    # N h = N k + N r, reduced in parts: for an integer N, N k is an integer and the fraction is
    # N r to full relative precision (the product N h rounded at once would lose the digits
    # that the quotient's derivative near a Bragg peak is made of)
    kn = k * n_wide
    whole = torch.round(kn)
    part = (kn - whole) + r_wide * n_wide
    num = _sinpi_reduced(*_reduce_sum(whole, part, dtype))
    r = r_wide.to(dtype)
    den = _sinpi_reduced(k, r)
    integer = r == 0  # den == 0, tested without a second read of den
    if torch.is_grad_enabled() and (h.requires_grad or n.requires_grad):
        den = torch.where(integer, torch.ones_like(den), den)  # keeps gradients finite at integers
    # the limit at integer h = k is N (-1)^(k (N - 1)) for integer N
    limit = n * (1.0 - 2.0 * _parity(k * (n.to(h.dtype) - 1.0))).to(dtype)
    return torch.where(integer, limit, num / den)
