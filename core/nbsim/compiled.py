"""Compiled kernels for large renders (``torch.compile``).

The orientation sums (:func:`nbsim.kernel.lattice_sums`) dominate large renders; compiled,
their Miller indices, lattice factor (with the polynomial sine of :mod:`nbsim.trig`) and
sums fuse into one vectorized loop without intermediate tensors.  Shapes are kept static
(chunks and orientation blocks are padded), so one compilation serves a whole render; the
compiled code is cached on disk (``$NBSIM_CACHE``, default ``~/.cache/nbsim/inductor``) so
that later runs start warm.  Compilation costs seconds, so it is used only for renders large
enough to pay for it (:func:`worth_compiling`) or when asked (``--compile on``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from nbsim.kernel import lattice_sums

#: sub-evaluations from which compiling pays for itself (measured: ``reports/benchmarks``)
THRESHOLD = {"cpu": 1e8, "cuda": 1e7}

_compiled = None


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


def compiled_lattice_sums():
    """The compiled :func:`~nbsim.kernel.lattice_sums` (built once per process)."""
    global _compiled
    if _compiled is None:
        cache = os.environ.get("NBSIM_CACHE") or str(Path.home() / ".cache" / "nbsim")
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cache) / "inductor"))
        _compiled = torch.compile(lattice_sums, dynamic=False)
    return _compiled
