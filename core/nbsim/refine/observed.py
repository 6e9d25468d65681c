"""The observed image a refinement fits: counts and the pixels the loss may use."""

from __future__ import annotations

import attrs
import numpy as np
import torch
from torch import Tensor

from nbsim.errors import InputError
from nbsim.io import read_bytes, smv


@attrs.frozen(eq=False)
class Observation:
    """Observed counts (the model's image shape) and the mask of pixels the loss uses."""

    counts: Tensor
    valid: Tensor
    path: str


def read_observed(path: str, sim, *, flag: str = "--observed") -> Observation:
    """An SMV image (its ADC offset, the model's ``-adc``, removed; pixels at 0 or 65535 left
    out) or a float32 image of the model's size."""
    shape = tuple(sim.shape)
    spixels, fpixels = shape[-2:]
    pixels = int(np.prod(shape))
    if read_bytes(path, flag)[:12] == b"{\nHEADER_BYT":
        frame = smv.read(path, flag=flag, with_pixels=True)
        if frame.height * frame.width != pixels or frame.width != fpixels:
            raise InputError(f"{flag}: {path} is {frame.width}x{frame.height}, the model {fpixels}x{pixels // fpixels}")
        raw = frame.pixels.astype(np.float64).reshape(shape)
        counts = raw - sim.config.output.adc_offset
        valid = (raw > 0) & (raw < 65535)
    else:
        data = np.fromfile(path, dtype="<f4")
        if data.size != pixels:
            raise InputError(f"{flag}: {path} holds {data.size} floats, the model has {pixels} pixels "
                             f"({'x'.join(map(str, shape[::-1]))})")
        counts = data.reshape(shape).astype(np.float64)
        valid = np.isfinite(counts)
    rendered = np.zeros(pixels, dtype=bool)
    rendered[sim.model().rendered.cpu().numpy()] = True
    valid &= rendered.reshape(shape)
    return Observation(torch.as_tensor(np.where(valid, counts, 0.0), dtype=sim.dtype, device=sim.device),
                       torch.as_tensor(valid, device=sim.device), path)
