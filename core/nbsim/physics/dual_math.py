"""Elementary functions for formulas written once for tensors and for numbers.

A formula that every engine shares (:mod:`nbsim.physics.pass_quantities`, Kahn polarization,
Rodrigues' rotation) is written with arithmetic and the functions here only.  Called with
tensors they are torch's (differentiable, on any device); called with Python numbers they
are :mod:`math`'s; and the numba engine compiles the same formulas, with the numba
implementations :func:`register_numba` gives these names (``nbsim.physics.jit.numba`` registers them
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


def _elementwise(tensor_fn, scalar_fn):
    """The function that is ``tensor_fn`` for tensors and ``scalar_fn`` for numbers."""
    def fn(x):
        return tensor_fn(x) if isinstance(x, Tensor) else scalar_fn(x)

    fn.__name__ = fn.__qualname__ = scalar_fn.__name__
    _SCALAR_FORMS[fn] = scalar_fn
    return fn


#: each elementwise function, with the math function numba compiles for it
_SCALAR_FORMS: dict = {}
sqrt = _elementwise(torch.sqrt, math.sqrt)
exp = _elementwise(torch.exp, math.exp)
sin = _elementwise(torch.sin, math.sin)
cos = _elementwise(torch.cos, math.cos)


def divide(x, y):
    """x / y, correctly rounded.  numba compiles it as x * (1/y) corrected by one fused
    multiply-add step (Markstein's theorem: the same, correctly rounded quotient for finite
    values away from overflow and underflow), so that 1/y of a loop-invariant y is computed
    once outside the loop instead of one division per element (the scattering vector of P3
    in float64: 0.91 s with divisions, 0.67 s so)."""
    return x / y


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

    for fn, scalar_fn in _SCALAR_FORMS.items():
        overload(fn)(_scalar_typer(scalar_fn))

    @overload(divide, jit_options={"fastmath": {"contract"}})
    def _divide(x, y):
        def quotient(x, y):
            inverse = 1.0 / y
            q = x * inverse
            return q + (x - q * y) * inverse  # both contract to fused multiply-adds: exact residual

        return quotient

    @overload(select)
    def _select(condition, if_true, if_false):
        return lambda condition, if_true, if_false: if_true if condition else if_false

    for fn in _formulas:
        _compilable(fn)
    _numba_ready = True


def _scalar_typer(scalar_fn):
    """numba's typing function for an elementwise function: its math form, whatever the type."""
    def implementation(x):
        return scalar_fn(x)

    return lambda x: implementation
