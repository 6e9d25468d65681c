"""Peak bytes of the tensors an operation creates, counted exactly (not resident memory, which
the allocator and the OS blur): a dispatch mode that adds each new tensor's storage when an
operator returns it and subtracts it when the tensor is freed.  Views share their base's
storage and are not counted again."""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    """``with LiveTensorBytes() as live: ...`` then ``live.peak``: the most bytes alive at once."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):
            return out  # a view or an in-place result: no new storage
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                nbytes = t.untyped_storage().nbytes()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._freed, nbytes)
        return out
