"""A picture of the rendered image (PNG, written with Pillow), for looking before reading.

Two scalings: ``log`` (white spots on black, log(1 + I/m) of each pixel against its maximum,
m the median of the lit pixels, so that both the background and the strongest spots show) and
``adxv`` (dark spots on white, linear, saturating where the PGM image does: at 250 grey
levels per five rms of the image, as ``-pgmscale`` sets it).  A detector of several panels is
laid out panel after panel in rows of ceil(sqrt(K)), separated by a few mid-grey pixels.
"""

from __future__ import annotations

import io
import math

import numpy as np

SCALINGS = ("log", "adxv")
GAP = 4  # pixels between panels
GAP_GREY = 128


def grey_levels(image: np.ndarray, scaling: str, linear_scale: float) -> np.ndarray:
    """uint8 grey levels of a float image of any shape (not finite values as 0)."""
    x = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.maximum(x, 0.0)
    if scaling == "log":
        lit = x[x > 0]
        if lit.size == 0:
            return np.zeros(x.shape, dtype=np.uint8)
        m = float(np.median(lit))
        level = np.log1p(x / m) / math.log1p(float(lit.max()) / m)
        return np.round(255.0 * level).astype(np.uint8)
    if scaling == "adxv":
        return (255 - np.minimum(np.trunc(x * linear_scale), 255.0)).astype(np.uint8)
    raise ValueError(f"unknown scaling {scaling!r}; known: {', '.join(SCALINGS)}")


def laid_out(levels: np.ndarray) -> np.ndarray:
    """(panels, slow, fast) grey levels as one picture; a (slow, fast) image as it is."""
    if levels.ndim == 2:
        return levels
    K, S, F = levels.shape
    columns = math.ceil(math.sqrt(K))
    rows = math.ceil(K / columns)
    picture = np.full((rows * S + (rows - 1) * GAP, columns * F + (columns - 1) * GAP), GAP_GREY, dtype=np.uint8)
    for k in range(K):
        r, c = divmod(k, columns)
        picture[r * (S + GAP): r * (S + GAP) + S, c * (F + GAP): c * (F + GAP) + F] = levels[k]
    return picture


def png_bytes(image: np.ndarray, scaling: str, linear_scale: float) -> bytes:
    from PIL import Image  # imported here: only runs that draw a picture pay for it

    out = io.BytesIO()
    Image.fromarray(laid_out(grey_levels(image, scaling, linear_scale)), mode="L").save(out, format="PNG")
    return out.getvalue()
