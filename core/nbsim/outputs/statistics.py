"""The statistics the reference program prints after rendering (``specs/outputs.md``).

Computed on the float32 image as the reference stores it: max_I over rendered pixels (the
first pixel in raster order wins ties; its position is the centre of the pixel's last
sub-pixel, in metres), mean and rms over rendered pixels (rms about zero, n-1 in the
denominator, each square rounded to float32 as the reference's float product is), and rmsd
about the mean over every pixel of the ROI, masked ones included as 0.
"""

from __future__ import annotations

import math

import attrs
import numpy as np


@attrs.frozen
class Statistics:
    max_I: float
    max_x: float
    max_y: float
    mean: float
    rms: float
    rmsd: float
    rendered: int


def image_statistics(image32: np.ndarray, rendered: np.ndarray, roi, subpixel_size: float, oversample: int) -> Statistics:
    """Statistics of a (spixels, fpixels) float32 image; ``rendered`` are flat raster indices.

    An image with infinite or NaN pixels (a running product that overflowed, as the reference's
    does) gives the reference's inf and nan figures, without numpy's warnings about them.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return _statistics(image32, rendered, roi, subpixel_size, oversample)


def _statistics(image32: np.ndarray, rendered: np.ndarray, roi, subpixel_size: float, oversample: int) -> Statistics:
    flat = image32.reshape(-1)
    # temporaries freed as soon as they are summed, squares taken in place: a few bytes per
    # pixel at the peak instead of tens (same operations, same results)
    values = flat[rendered].astype(np.float64)
    n = len(values)
    max_I, max_x, max_y = 0.0, 0.0, 0.0
    if n and values.max() > 0.0:
        k = int(np.argmax(values))  # first maximum in raster order
        max_I = float(values[k])
        fpixels = image32.shape[-1]
        idx = int(rendered[k])
        last = oversample - 1
        max_x = subpixel_size * (idx % fpixels * oversample + last) + subpixel_size / 2.0
        max_y = subpixel_size * (idx // fpixels * oversample + last) + subpixel_size / 2.0
    total = float(values.sum())
    del values
    squares = flat[rendered]
    np.multiply(squares, squares, out=squares)  # float32 products, as the reference
    sumsqr = float(squares.astype(np.float64).sum())
    del squares
    mean = total / max(n, 1)
    rms = math.sqrt(sumsqr / ((n if n > 1 else 2) - 1))
    xmin, xmax, ymin, ymax = roi
    inside = image32[..., max(ymin, 0): ymax + 1, max(xmin, 0): xmax + 1].astype(np.float64)
    m = inside.size
    inside -= mean
    np.square(inside, out=inside)
    rmsd = math.sqrt(float(inside.sum()) / ((m if m > 1 else 2) - 1))
    return Statistics(max_I, max_x, max_y, mean, rms, rmsd, n)
