"""Poisson noise images.

``method="c"`` reproduces the reference program's noise image for the same seed: the ROI
pixels are visited in raster order and each draws ``poidev`` from the shared ``ran1`` stream,
after the random-misset and mosaic-domain draws the reference makes first (they matter when
the noise seed is positive and continues their table).  ``method="parallel"`` draws from
nbsim's counter-based generator seeded with |seed| (:mod:`nbsim.physics.counter_random`): each
pixel's deviate is a function of the seed and the pixel's place in the image, drawn in
parallel; reproducible, but a different stream.
"""

from __future__ import annotations

import numpy as np
import torch

from nbsim.model.build import reference_stream
from nbsim.model.config import RunConfig
from nbsim.outputs.image_files import roi_mask
from nbsim.physics import jit, rng
from nbsim.physics.counter_random import CounterRandom

METHODS = ("c", "parallel")


def noise_counts(image32: np.ndarray, config: RunConfig, *, method: str = "c", progress=None) -> np.ndarray:
    """Poisson counts (float64, image shape) for the ROI pixels; 0 elsewhere.

    ``progress(done, total)`` follows the redrawing of many mosaic domains (method ``c``: the
    noise continues the generator past them)."""
    inside = roi_mask(image32.shape, config.detector.roi)
    counts = np.zeros(image32.shape, dtype=np.float64)
    means = image32[inside]
    if method == "parallel":
        drawn = CounterRandom(abs(int(config.output.seed))).poisson(torch.from_numpy(np.asarray(image32)))
        counts[inside] = drawn.numpy()[inside]
        return counts
    if method != "c":
        raise ValueError(f"noise method must be one of {', '.join(METHODS)}, got {method!r}")
    gen = reference_stream(config, progress)[0]
    counts[inside] = c_poisson(np.ascontiguousarray(means, dtype=np.float32), gen, int(config.output.seed))
    return counts


def c_poisson(means: np.ndarray, gen: rng.Ran1, seed: int) -> np.ndarray:
    """The reference's ``poidev`` for each mean in order, continuing ``gen``'s shuffle table."""
    if jit.numba() is None:  # pragma: no cover - numba unavailable: the same arithmetic in Python (slow)
        stream, gauss = [seed], {}
        return np.array([rng.poidev(x, gen, stream, gauss) for x in means], dtype=np.float64)
    from nbsim.outputs.noise_loop import poisson_stream

    state = np.array([seed, gen.iy], dtype=np.int64)
    iv = np.array(gen.iv, dtype=np.int64)
    return poisson_stream(means, state, iv)
