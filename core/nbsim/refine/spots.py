"""Bragg spots of an observed image: where they are, to a fraction of a pixel.

A spot is a pixel brighter than its eight neighbours and than the background by
``SIGMAS`` standard deviations (the background: the median of the valid pixels, with Poisson
deviations), its position the centroid of its 3 x 3 window above the window's minimum.  Only
positions matter here (the coarse stage of a refinement, ``nbsim.refine.spot_fit``), so the
finder is deliberately simple, and it keeps only strong spots (:data:`STRONG`), at most the
brightest ``limit``: their positions are those of their reflections.
"""

from __future__ import annotations

import attrs
import numpy as np

#: how far above the background a spot's peak pixel lies, in Poisson standard deviations
SIGMAS = 3.0
#: and at least this many counts above it
MIN_COUNTS = 5.0
#: a spot is kept when its counts reach this fraction of the typical brightest spot's (the
#: median of the BRIGHTEST brightest): weaker ones are mostly the sphere cutting a
#: reflection's tails, whose centroid lies off the reflection's position
STRONG = 0.1
BRIGHTEST = 20


@attrs.frozen(eq=False)
class Spots:
    """Spot centroids in pixel coordinates (the centre of pixel (s, f) is (s, f)), brightest first."""

    panel: np.ndarray  # (N,) int
    slow: np.ndarray  # (N,) float
    fast: np.ndarray  # (N,) float
    counts: np.ndarray  # (N,) summed counts of the window above its minimum

    def __len__(self) -> int:
        return int(self.panel.shape[0])

    def subset(self, keep: np.ndarray) -> "Spots":
        return Spots(self.panel[keep], self.slow[keep], self.fast[keep], self.counts[keep])


def find_spots(counts: np.ndarray, valid: np.ndarray, *, limit: int = 3000) -> Spots:
    """The spots of ``counts`` ((spixels, fpixels) or (panels, spixels, fpixels)) where ``valid``."""
    image = np.where(valid, counts, 0.0).astype(np.float64)
    image = image.reshape(-1, *image.shape[-2:])
    valid = np.broadcast_to(valid, counts.shape).reshape(image.shape)
    background = float(np.median(image[valid])) if valid.any() else 0.0
    floor = background + max(MIN_COUNTS, SIGMAS * np.sqrt(max(background, 0.0) + 1.0))
    K, H, W = image.shape
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    window = np.stack([padded[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    centre = window[4]
    neighbours = np.delete(window, 4, axis=0)
    inner = np.zeros((H, W), dtype=bool)
    inner[1:-1, 1:-1] = True  # a peak on the edge has no full window
    peak = (centre > neighbours.max(0)) & (centre > floor) & valid & inner
    k, s, f = np.nonzero(peak)
    w = window[:, k, s, f]
    w = w - w.min(0)
    total = w.sum(0)
    dy = np.repeat([-1.0, 0.0, 1.0], 3)[:, None]
    dx = np.tile([-1.0, 0.0, 1.0], 3)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        slow = s + np.where(total > 0, (w * dy).sum(0) / total, 0.0)
        fast = f + np.where(total > 0, (w * dx).sum(0) / total, 0.0)
    order = np.argsort(-total, kind="stable")
    if len(order):
        order = order[total[order] >= STRONG * np.median(total[order[:BRIGHTEST]])]
    order = order[:limit]
    return Spots(panel=k[order], slow=slow[order], fast=fast[order], counts=total[order])
