"""Elementary functions for formulas written once for tensors and for numbers.

A formula that every engine shares (:mod:`nbsim.pass_quantities`, Kahn polarization,
Rodrigues' rotation) is written with arithmetic and the functions here only.  Called with
tensors they are torch's (differentiable, on any device); called with Python numbers they
are :mod:`math`'s; and the numba engine compiles the same formulas, with the numba
implementations :func:`register_numba` gives these names (``nbsim.jit.numba`` registers them
before anything is compiled).  :func:`select` is ``torch.where`` or a conditional expression;
in tensor use at least one of its two values is a tensor, so that the result keeps its dtype.

A shared formula is marked with :func:`formula`, which makes it callable from numba-compiled
code as it is (compiled on its own, with fused multiply-adds allowed as in the loop, and
inlined by LLVM where it is called; numba's own inlining of tuple-returning functions trips
its parallel loops' analysis).
Vectors in these formulas are triples of components (tensors or numbers).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


def sqrt(x):
    return torch.sqrt(x) if isinstance(x, Tensor) else math.sqrt(x)


def exp(x):
    return torch.exp(x) if isinstance(x, Tensor) else math.exp(x)


def sin(x):
    return torch.sin(x) if isinstance(x, Tensor) else math.sin(x)


def cos(x):
    return torch.cos(x) if isinstance(x, Tensor) else math.cos(x)


def select(condition, if_true, if_false):
    """``if_true`` where ``condition`` holds, else ``if_false`` (both evaluated)."""
    if isinstance(condition, Tensor) or isinstance(if_true, Tensor) or isinstance(if_false, Tensor):
        return torch.where(condition, if_true, if_false)
    return if_true if condition else if_false


_formulas: list = []
_numba_ready = False


def formula(fn):
    """Mark ``fn`` (arithmetic and this module's functions only) as a formula numba may compile."""
    _formulas.append(fn)
    if _numba_ready:
        _compilable(fn)
    return fn


def _compilable(fn) -> None:
    from numba.extending import overload

    overload(fn, strict=False, jit_options={"fastmath": {"contract"}})(lambda *args, **kwargs: fn)


@functools.cache
def register_numba() -> None:
    """Give the functions above their numba implementations, and make every formula compilable
    (once per process; formulas marked later are made compilable as they are marked)."""
    global _numba_ready
    from numba.extending import overload

    for fn in _formulas:
        _compilable(fn)
    _numba_ready = True

    @overload(sqrt)
    def _sqrt(x):
        return lambda x: math.sqrt(x)

    @overload(exp)
    def _exp(x):
        return lambda x: math.exp(x)

    @overload(sin)
    def _sin(x):
        return lambda x: math.sin(x)

    @overload(cos)
    def _cos(x):
        return lambda x: math.cos(x)

    @overload(select)
    def _select(condition, if_true, if_false):
        return lambda condition, if_true, if_false: if_true if condition else if_false
