"""Images of a dataset on demand, as a ``torch.utils.data.Dataset`` (for training loops).

Item k is image k of the plan (a still, or a frame of a series), rendered when asked for:
the same image ``nbsim stills``/``nbsim series`` would write for k, with its manifest record.
Each process that reads items (a DataLoader's workers included) sets up its own renderer on
first use, so the dataset pickles as its plan and options only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from nbsim.datasets import plan_from_argv
from nbsim.datasets.plan import Series, Stills
from nbsim.datasets.render import Renderer


class SimulatedImages(Dataset):
    """``dataset[k]``: {"photons": float32 tensor of the image shape, "counts": the noise image
    (int32 tensor; absent with -nonoise), "index": k, "record": the manifest's fields}."""

    def __init__(self, plan: Series | Stills, options=None):
        from nbsim.runner import RunOptions

        self.plan = plan
        self.options = options or RunOptions()
        self._renderer: Renderer | None = None

    @classmethod
    def stills(cls, argv: Sequence[str], count: int, *, seed: int = 0, options=None, **jitters) -> SimulatedImages:
        return cls(plan_from_argv("stills", argv, options, seed=seed, count=count, **jitters), options)

    @classmethod
    def series(cls, argv: Sequence[str], frames: int, *, seed: int = 0, options=None) -> SimulatedImages:
        return cls(plan_from_argv("series", argv, options, seed=seed, frames=frames), options)

    def __len__(self) -> int:
        return self.plan.count

    def __getitem__(self, k: int) -> dict:
        if not 0 <= k < len(self):
            raise IndexError(f"image {k} of a dataset of {len(self)}")
        if self._renderer is None:
            self._renderer = Renderer(self.plan.config(0), self.options, images=len(self))
        image = self._renderer.image(self.plan.config(k))
        item = {"photons": torch.from_numpy(image.photons), "index": k, "record": self.plan.record(k)}
        if image.counts is not None:
            item["counts"] = torch.from_numpy(image.counts.astype("int32"))
        return item

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_renderer": None}  # each process sets up its own
