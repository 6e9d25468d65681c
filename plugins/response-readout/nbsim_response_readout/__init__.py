"""nbsim detector response ``readout``: Gaussian read-out noise of ``sigma`` ADU per pixel.

recorded = value + sigma g, with g standard normal per pixel from the chain step's generator
(``context.random``, seeded by ``seed=``, else by the run's noise seed and the step's
position): new in every image, the same for the same seed whatever the chunking or device. Differentiable in the image (the noise does not depend on
it). Use it after ``gain``, in ADUs: ``--response poisson --response gain:adu_per_photon=2
--response readout:sigma=3``.

This package is the template for a facility's own response: one attrs class on
``nbsim.plugins.response_base.Response`` (its fields are the options), a plugin object whose
``nbsim_register_detector_responses`` hook registers it, an entry point in group ``nbsim``,
and tests that reuse ``nbsim.testing.BaseDetectorResponseTests``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from nbsim import hookimpl
from nbsim.plugins.response_base import Response

__all__ = ["Readout", "plugin"]


@attrs.frozen
class Readout(Response):
    name: ClassVar[str] = "readout"
    random: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("sigma",)
    sigma: float | None = None  # ADU
    seed: int | None = None

    def check(self) -> None:
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be at least 0 ADU, got {self.sigma:g}")

    def apply(self, image, context):
        noise = context.random.normal(image.shape, dtype=image.dtype, device=image.device)
        return torch.add(image, noise, alpha=self.sigma)


class ReadoutPlugin:
    @hookimpl
    def nbsim_register_detector_responses(self, register):
        register(Readout())


plugin = ReadoutPlugin()
