"""The render engines as objects: each says whether it can render a job and, if not, why.

An engine turns chunks of pixels into values; :func:`nbsim.engines.pipeline.render` owns everything
around that (which pixels, pass order, chunk sizes from the memory budget, tracing, the
image).  Three engines exist:

* ``tensor``: the tensor kernel (:func:`nbsim.engines.tensor_kernel.render_pixels`), eager; renders
  everything, with gradients, on any device.
* ``compiled``: the same kernel with its orientation sums through torch.compile
  (:mod:`nbsim.engines.compiled`), where a compiler is available.
* ``numba``: the compiled CPU loop (:mod:`nbsim.engines.numba_engine`), without gradients, for the built-in
  lattice shapes and lattice factors with a compiled form (:mod:`nbsim.plugins.compiled_forms`), the
  built-in polarization models, and phi policies that offer ``shared_tables``; not for
  ``-interpolate`` with running products (:func:`nbsim.engines.numba_engine.refusal` says which a render lacks).

``auto`` (:func:`choose`) takes numba where it applies and the render has at least
``NUMBA_MIN_EVALUATIONS`` sub-evaluations (below that the tensor kernel is done before numba
has loaded its code), else compiled where it applies and the render is large enough to pay
for compiling (:func:`nbsim.engines.compiled.worth_compiling`), else tensor.  The choice and its reason
travel with the render (:class:`Choice`), into the provenance record and ``--verbose``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import attrs
import torch
import torch.utils.checkpoint
from torch import Tensor

from nbsim.engines import compiled
from nbsim.engines import numba_engine as cpu
from nbsim.engines.tensor_kernel import PassOrder, render_pixels
from nbsim.errors import UsageError
from nbsim.model.build import Model
from nbsim.plugins.selection import Physics

#: pixels per chunk of the numba loop (it keeps no per-evaluation tensors): progress granularity
NUMBA_CHUNK = 1 << 16
#: below this many sub-evaluations the tensor kernel finishes before numba has loaded its code
NUMBA_MIN_EVALUATIONS = 2_000_000

#: ``chunk(idx, interpolating) -> (values (P,), solid angles (P,), interpolation switch or None)``
ChunkRenderer = Callable[[Tensor, bool], tuple]


class EngineError(UsageError):
    """An engine was asked for by name and cannot render this job."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"engine {name} cannot render this: {reason}")
        self.name, self.reason = name, reason


class Engine(Protocol):
    """How a render's chunks of pixels become values."""

    name: str
    #: the fewest pixels a chunk should hold (0: as the memory plan says)
    min_chunk: int

    def fused(self, m: Model) -> bool:
        """Whether the orientation sums keep nothing per sub-evaluation (the memory plan then
        counts passes only)."""

    def refusal(self, m: Model, physics: Physics) -> str | None:
        """Why this engine cannot render ``m`` with ``physics``, or None when it can."""

    def renderer(self, m: Model, physics: Physics, order: PassOrder, *, pixels_per_chunk: int,
                 orientation_chunk: int, checkpoint: bool, notice: Callable[[str], None] | None) -> ChunkRenderer:
        """The chunk renderer of one render, prepared once."""


@attrs.frozen
class TensorEngine:
    name: str = "tensor"
    min_chunk: int = 0

    def fused(self, m: Model) -> bool:
        return False

    def refusal(self, m: Model, physics: Physics) -> str | None:
        return None

    def renderer(self, m, physics, order, *, pixels_per_chunk, orientation_chunk, checkpoint, notice):
        return _kernel_chunks(m, physics, order, orientation_chunk, checkpoint, sums=None)


@attrs.frozen
class CompiledEngine:
    """The tensor kernel with compiled orientation sums; chunks are padded to one static shape."""

    name: str = "compiled"
    min_chunk: int = 0

    def fused(self, m: Model) -> bool:
        return compiled.fuses_everything(m.device)

    def refusal(self, m: Model, physics: Physics) -> str | None:
        if compiled.available(m.device):
            return None
        if m.device.type == "cuda":
            return "torch.compile needs Triton for CUDA, and it is not installed"
        if m.device.type == "cpu":
            return "torch.compile needs a C++ compiler (g++, c++ or clang++) on the CPU, and none is on PATH"
        return f"torch.compile does not build kernels for {m.device.type} here"

    def renderer(self, m, physics, order, *, pixels_per_chunk, orientation_chunk, checkpoint, notice):
        chunk = _kernel_chunks(m, physics, order, orientation_chunk, checkpoint,
                               sums=compiled.compiled_lattice_sums(m.device))

        def padded(idx: Tensor, interpolating: bool) -> tuple:
            short = pixels_per_chunk - idx.shape[0]
            if short <= 0:
                return chunk(idx, interpolating)
            # one static shape for the compiled code: repeat the last pixel, drop its values after
            v, om, switch = chunk(torch.cat((idx, idx[-1:].expand(short))), interpolating)
            return v[:-short], om[:-short], switch

        return padded


@attrs.frozen
class NumbaEngine:
    name: str = "numba"
    min_chunk: int = NUMBA_CHUNK

    def fused(self, m: Model) -> bool:
        return False

    def refusal(self, m: Model, physics: Physics) -> str | None:
        return cpu.refusal(m, physics)

    def renderer(self, m, physics, order, *, pixels_per_chunk, orientation_chunk, checkpoint, notice):
        return cpu.pixel_renderer(m, physics, order, notice)


def _kernel_chunks(m, physics, order, orientation_chunk, checkpoint, sums) -> ChunkRenderer:
    def chunk(idx: Tensor, interpolating: bool) -> tuple:
        run = functools.partial(render_pixels, m, idx, physics, order, orientation_chunk=orientation_chunk,
                                interpolating=interpolating, sums=sums)
        if checkpoint:  # recomputed in the backward pass: bounded memory for gradients
            return torch.utils.checkpoint.checkpoint(run, use_reentrant=False)
        return run()

    return chunk


#: every engine by name, in the order ``auto`` considers them
ENGINES: dict[str, Engine] = {e.name: e for e in (NumbaEngine(), CompiledEngine(), TensorEngine())}
#: the names ``engine=`` accepts
ENGINE_NAMES = ("auto", "tensor", "compiled", "numba")


@attrs.frozen
class Choice:
    """The engine a render uses and why (for the provenance record and ``--verbose``)."""

    engine: Engine
    reason: str

    @property
    def name(self) -> str:
        return self.engine.name


def sub_evaluations(m: Model, pixels: int) -> int:
    """The render's size as ``auto`` measures it: pixels x passes x phi steps x mosaic domains."""
    return pixels * m.passes_per_pixel * m.phisteps * m.domains


def choose(name: str, m: Model, physics: Physics, evaluations: int) -> Choice:
    """The engine called ``name`` ("auto": by the rule of this module's documentation) for a
    render of ``evaluations`` sub-evaluations (:func:`sub_evaluations`).

    :raises EngineError: an engine asked for by name cannot render this job.
    """
    if name not in ENGINE_NAMES:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_NAMES)}, got {name!r}")
    if name != "auto":
        refusal = ENGINES[name].refusal(m, physics)
        if refusal is not None:
            raise EngineError(name, refusal)
        return Choice(ENGINES[name], "asked for")
    size = f"{evaluations:.3g} sub-evaluations"
    if evaluations < NUMBA_MIN_EVALUATIONS:  # numba is not even imported then (about 0.3 s saved)
        why_not_numba = f"below numba's {NUMBA_MIN_EVALUATIONS:.0e}"
    else:
        numba_refusal = ENGINES["numba"].refusal(m, physics)
        if numba_refusal is None:
            return Choice(ENGINES["numba"], f"auto: {size}, numba from {NUMBA_MIN_EVALUATIONS:.0e}")
        why_not_numba = f"numba: {numba_refusal}"
    if ENGINES["compiled"].refusal(m, physics) is None and compiled.worth_compiling(m.device, evaluations):
        return Choice(ENGINES["compiled"], f"auto: {size} on {m.device.type} ({why_not_numba})")
    return Choice(ENGINES["tensor"], f"auto: {size} ({why_not_numba})")
