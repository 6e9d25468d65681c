"""The reference program's four crystal shapes (``specs/physics.md``, lattice factor).

* ``square``: sincg(pi h, Na) sincg(pi k, Nb) sincg(pi l, Nc), sincg(x, N) = sin(N x)/sin(x)
  (N at x = 0), the transform of a parallelepiped of Na x Nb x Nc cells;
* ``round``: Na Nb Nc ROUND_NORM sinc3(pi sqrt(fudge * sum((hkl - hkl0)^2 N^2))), an ellipsoid;
* ``gauss``: Na Nb Nc exp(-rad^2 fudge / GAUSS_WIDTH);
* ``tophat``: Na Nb Nc where rad^2 fudge < TOPHAT_RADIUS2, else 0;
where rad^2 = |(hkl - hkl0) . (a*, b*, c*)|^2 (Na Nb Nc)^2 uses the unrotated reciprocal
vectors in Å⁻¹ (the reference's units: the spot width depends on the absolute cell size).
Miller indices arrive in double precision; the result is in the precision of ``n_cells``.
``round`` is not differentiable where hkl crosses a half-integer (hkl0 jumps) and ``tophat``
has zero gradient except on its edge, where it is not differentiable.  Each shape offers the
numba engine a compiled form of the same formula (:mod:`nbsim.plugins.builtins.lattice_forms`).
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from nbsim.physics.trig import sincg_pi
from nbsim.plugins.builtins.shape_constants import GAUSS_WIDTH, ROUND_NORM, TOPHAT_RADIUS2
from nbsim.plugins.hookspecs import hookimpl
from nbsim.protocols import LatticeFactor


def sincg(x: Tensor, n: Tensor) -> Tensor:
    """sin(N x)/sin(x), N where x == 0 exactly.

    The reference skips the factor when N <= 1; with N = 1 it is exactly 1 here as well
    (sin(x)/sin(x)), and N below 1 cannot come from a command line (counts are clamped to 1).
    """
    zero = x == 0
    if torch.is_grad_enabled() and (x.requires_grad or n.requires_grad):
        x = torch.where(zero, torch.ones_like(x), x)  # keeps the gradient finite where x == 0
    return torch.where(zero, n, torch.sin(x * n) / torch.sin(x))


class _SquareFactor(torch.autograd.Function):
    """sincg(pi h, N) with derivatives computed from h = k + r and N h = whole + part, each
    reduced exactly (``specs/physics.md``): autograd through sin(pi h) of a rounded pi h near a
    large integer gives the quotient's derivative no correct digit (the wrong sign at
    h = 17 + 1e-6), and through a reduction it keeps a dozen intermediates per term. Here only
    h and N are kept; the value is the render's own."""

    @staticmethod
    def forward(ctx, h: Tensor, n: Tensor) -> Tensor:
        ctx.save_for_backward(h, n)
        return sincg(math.pi * h, n)

    @staticmethod
    def backward(ctx, grad: Tensor):
        # in place where it can: the backward pass of a chunk holds its graph, and these are
        # a dozen arrays of its size
        h, n = ctx.saved_tensors
        k = torch.round(h)
        r = h - k
        whole = k * n
        part = r * n
        fraction = whole - torch.round(whole)
        whole.sub_(fraction)  # N h = whole + part, the fraction to full relative precision
        part.add_(fraction)
        del fraction
        sign = whole.add_(k).remainder_(2.0).mul_(-2.0).add_(1.0)  # (-1)^(whole + k): the reduced sines' signs
        peak = r == 0
        sin_r = torch.where(peak, torch.full_like(r, 0.5), r).mul_(math.pi).sin_()
        cos_p = (part * math.pi).cos_()
        grad_h = grad_n = None
        if ctx.needs_input_grad[1]:
            d_n = (h * math.pi).mul_(sign).mul_(cos_p).div_(sin_r)
            d_n = torch.where(peak, 1.0 - 2.0 * torch.remainder(k * (n - 1.0), 2.0), d_n)  # N (-1)^(k (N-1)) at peaks
            grad_n = (grad * d_n).sum_to_size(n.shape)
            del d_n
        if ctx.needs_input_grad[0]:
            d_h = cos_p.mul_(n).mul_(sin_r)
            d_h.sub_(part.mul_(math.pi).sin_().mul_(r.mul_(math.pi).cos_()))  # N cos(pi p) sin(pi r) - sin(pi p) cos(pi r)
            d_h.mul_(sign).mul_(math.pi).div_(sin_r).div_(sin_r)
            grad_h = grad * d_h.masked_fill_(peak, 0.0)  # flat in h at a Bragg peak
        return grad_h, grad_n


def sinc3(x: Tensor) -> Tensor:
    """3 (sin x / x - cos x) / x^2, 1 at x == 0."""
    safe = torch.where(x == 0, torch.ones_like(x), x)
    value = 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe)
    return torch.where(x == 0, torch.ones_like(x), value)


def _offset(hkl: Tensor, hkl0: Tensor, n_cells: Tensor) -> Tensor:
    """hkl - hkl0 (exact in hkl's precision), in the working precision of ``n_cells``."""
    return (hkl - hkl0).to(n_cells.dtype)


def _offset_sqr(hkl: Tensor, hkl0: Tensor, n_cells: Tensor, reciprocal: Tensor) -> Tensor:
    d = _offset(hkl, hkl0, n_cells)
    delta = (d[..., 0:1] * reciprocal[0] + d[..., 1:2] * reciprocal[1]) + d[..., 2:3] * reciprocal[2]
    na, nb, nc = n_cells[0], n_cells[1], n_cells[2]
    return (delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1] + delta[..., 2] * delta[..., 2]) * na * na * nb * nb * nc * nc


def _compiled_form(shape: str):
    """The shape's numba form (nbsim.plugins.compiled_forms), imported on first use: it imports numba."""
    from nbsim.plugins.builtins.lattice_forms import FORMS

    return FORMS[shape]


@attrs.frozen
class SquareLattice(LatticeFactor):
    name: str = "square"
    needs_nearest: bool = False  # hkl0 is not used: the kernel may pass None
    reads_reciprocal: bool = False

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        if torch.compiler.is_compiling():
            # fused: exact reduction of the argument, polynomial sine, in the working precision
            return sincg_pi(hkl, n_cells).prod(-1)
        if torch.is_grad_enabled() and (hkl.requires_grad or n_cells.requires_grad):
            # the values of the render below, the derivatives from the exactly reduced arguments
            return _SquareFactor.apply(hkl, n_cells.to(hkl.dtype)).prod(-1).to(n_cells.dtype)
        # eager without gradients: a few library sines in hkl's (double) precision cost less than
        # the reduction's dozen passes over memory, in either working precision
        return sincg(math.pi * hkl, n_cells.to(hkl.dtype)).prod(-1).to(n_cells.dtype)

    def compiled_form(self):
        return _compiled_form("square")


@attrs.frozen
class RoundLattice(LatticeFactor):
    name: str = "round"

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        d = _offset(hkl, hkl0, n_cells)
        na, nb, nc = n_cells[0], n_cells[1], n_cells[2]
        hrad = d[..., 0] * d[..., 0] * na * na + d[..., 1] * d[..., 1] * nb * nb + d[..., 2] * d[..., 2] * nc * nc
        arg = hrad * fudge
        # sqrt has an infinite derivative at 0: evaluate it away from 0 (sinc3 is flat there)
        root = torch.sqrt(torch.where(arg > 0, arg, torch.ones_like(arg)))
        root = torch.where(arg > 0, root, torch.zeros_like(root))
        return na * nb * nc * ROUND_NORM * sinc3(math.pi * root)

    def compiled_form(self):
        return _compiled_form("round")


@attrs.frozen
class GaussLattice(LatticeFactor):
    name: str = "gauss"

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        rad = _offset_sqr(hkl, hkl0, n_cells, reciprocal)
        return n_cells[0] * n_cells[1] * n_cells[2] * torch.exp(-(rad / GAUSS_WIDTH * fudge))

    def compiled_form(self):
        return _compiled_form("gauss")


@attrs.frozen
class TophatLattice(LatticeFactor):
    name: str = "tophat"

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        rad = _offset_sqr(hkl, hkl0, n_cells, reciprocal)
        inside = (rad * fudge < TOPHAT_RADIUS2).to(n_cells.dtype)
        return n_cells[0] * n_cells[1] * n_cells[2] * inside

    def compiled_form(self):
        return _compiled_form("tophat")


BUILTIN_SHAPES = ("square", "round", "gauss", "tophat")


class BuiltinLatticePlugin:
    @hookimpl
    def nbsim_register_lattice_factors(self, register):
        for factor in (SquareLattice(), RoundLattice(), GaussLattice(), TophatLattice()):
            register(factor)
