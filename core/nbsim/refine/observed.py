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


def _recorded(path: str, flag: str, frame: int | None) -> np.ndarray | None:
    """The pixels of a recorded image (SMV, miniCBF, or frame ``frame`` of a NeXus file), or
    None for a raw float file."""
    head = read_bytes(path, flag)[:16]
    if head[:12] == b"{\nHEADER_BYT":
        smv_frame = smv.read(path, flag=flag, with_pixels=True)
        return smv_frame.pixels.reshape(smv_frame.height, smv_frame.width)
    if head[:7] == b"###CBF:":
        import fabio

        try:
            return np.asarray(fabio.open(path).data)
        except Exception as exc:  # fabio's errors for a damaged file vary
            raise InputError(f"{flag}: {path} is not a readable CBF ({exc})") from None
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                data = f["/entry/data/data"]
                k = 0 if frame is None else frame
                if not 0 <= k < data.shape[0]:
                    raise InputError(f"{flag}: {path} has {data.shape[0]} frames, no frame {k}")
                return np.asarray(data[k])
        except (OSError, KeyError) as exc:
            raise InputError(f"{flag}: {path} has no readable /entry/data/data ({exc})") from None
    return None


def read_observed(path: str, sim, *, flag: str = "--observed", frame: int | None = None) -> Observation:
    """A recorded image (SMV, miniCBF, or frame ``frame`` of a NeXus file: the model's ``-adc``
    offset removed, pixels at 0 or 65535 left out) or a float32 image of the model's size."""
    shape = tuple(sim.shape)
    spixels, fpixels = shape[-2:]
    pixels = int(np.prod(shape))
    recorded = _recorded(path, flag, frame)
    if recorded is not None:
        if recorded.size != pixels or recorded.shape[-1] != fpixels:
            raise InputError(f"{flag}: {path} is {'x'.join(map(str, recorded.shape[::-1]))} pixels, the model "
                             f"{'x'.join(map(str, shape[::-1]))}")
        raw = recorded.astype(np.float64).reshape(shape)
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
