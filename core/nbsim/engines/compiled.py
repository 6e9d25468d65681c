"""Compiled kernels for large renders (``torch.compile``).

The orientation sums (:func:`nbsim.engines.tensor_kernel.lattice_sums`) dominate large renders; compiled,
their Miller indices, lattice factor (with the polynomial sine of :mod:`nbsim.physics.trig`) and
sums fuse: on a GPU into one kernel per orientation block without intermediate tensors, on a
CPU into two vectorized loops that store the Miller indices and per-axis factors of the
block between them (see FUSE_ALL).  Shapes are kept static
(chunks and orientation blocks are padded), so one compilation serves a whole render; the
compiled code is cached on disk (``nbsim.physics.jit.cache_dir() / "inductor"``) so
that later runs start warm.  Compilation costs seconds, so it is used only for renders large
enough to pay for it (:func:`worth_compiling`) or when asked (``--engine compiled``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import torch

from nbsim.engines.tensor_kernel import lattice_sums
from nbsim.physics import jit

#: sub-evaluations from which compiling pays for itself in one render.  CPU: measured
#: (``reports/benchmarks``: loading the compiler and its cached code costs 5-8 s a process, the
#: eager kernel about 25 ns a sub-evaluation, 5x what the compiled one takes).  CUDA: an estimate
#: until a device run measures it (``benchmarks/gpu_check.py`` records both engines and the
#: cost of a new process): seconds of loading against well under a nanosecond saved per
#: sub-evaluation, so only renders eager takes seconds over.
THRESHOLD = {"cpu": 1e8, "cuda": 1e10}
#: inductor's store-or-recompute thresholds, raised on GPUs so that an orientation block's sum is
#: one kernel: with the defaults it stores the Miller indices and the per-axis lattice factors,
#: 36 bytes per sub-evaluation written and read back.  On a CPU the defaults stay: the fully
#: fused loop does not vectorize there (measured 2x slower).
FUSE_ALL = {"realize_opcount_threshold": 100_000, "realize_reads_threshold": 1_000,
            "realize_acc_reads_threshold": 1_000}

_compiled: dict[str, Callable] = {}


def available(device: torch.device) -> bool:
    """Whether torch.compile can build kernels for ``device`` here."""
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return device.type == "cpu" and any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def worth_compiling(device: torch.device, evaluations: int) -> bool:
    return available(device) and evaluations >= THRESHOLD.get(device.type, float("inf"))


def fuses_everything(device: torch.device) -> bool:
    """Whether the compiled sums keep nothing per sub-evaluation on ``device`` (see FUSE_ALL)."""
    return device.type == "cuda"


def compiled_lattice_sums(device: torch.device) -> Callable:
    """The compiled :func:`~nbsim.engines.tensor_kernel.lattice_sums` for ``device`` (built once per process)."""
    if device.type not in _compiled:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(jit.cache_dir() / "inductor"))
        options = FUSE_ALL if fuses_everything(device) else None
        _compiled[device.type] = torch.compile(lattice_sums, dynamic=False, options=options)
    return _compiled[device.type]
