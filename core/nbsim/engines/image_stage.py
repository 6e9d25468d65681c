"""The image stage: transforms of whole panels between the render and the outputs.

A render produces the ideal image of every panel; the selected image transforms
(:class:`nbsim.protocols.ImageTransform`, registered by plugins, chosen with
``--image-stage`` or ``image_stage=``) then run on it in order, on (panel, slow, fast)
tensors, before the float image, the integer and noise images or any other output are made.
Only what the configuration renders (inside the ROI, not masked, or the pixels asked for) is
kept afterwards; to give those pixels the values a whole render would, the render covers
every pixel within the stage's halo of them, ROI and mask regardless, panel by panel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor

from nbsim.model.panels import Panels
from nbsim.protocols import ImageTransform


def halo(stage: Sequence[ImageTransform]) -> int:
    """How far around an output pixel the stage needs rendered pixels: the transforms' halos
    add up, as each widens what the next one sees."""
    return sum(int(t.halo) for t in stage)


def needed_pixels(outputs: Tensor, panels: Panels, reach: int) -> Tensor:
    """Sorted flat indices of every pixel within ``reach`` (along fast and slow) of ``outputs``
    in the same panel."""
    if reach == 0 or outputs.numel() == 0:
        return outputs
    shape = (panels.count, 1, panels.spixels, panels.fpixels)
    marked = torch.zeros(panels.pixels, dtype=torch.float32, device=outputs.device)
    marked[outputs] = 1.0
    grown = nnf.max_pool2d(marked.reshape(shape), 2 * reach + 1, stride=1, padding=reach)
    return torch.nonzero(grown.reshape(-1)).reshape(-1)


def apply(stage: Sequence[ImageTransform], image: Tensor, model) -> Tensor:
    """``image`` (K, S, F) through every transform of the stage, in order."""
    for transform in stage:
        transformed = transform.apply(image, model)
        if transformed.shape != image.shape:
            raise ValueError(f"image transform {transform.name!r} returned shape {tuple(transformed.shape)} "
                             f"for an image of shape {tuple(image.shape)}")
        image = transformed
    return image
