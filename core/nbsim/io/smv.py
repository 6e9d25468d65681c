"""SMV (ADSC) frames: the header of ``KEY=value;`` lines and 16-bit pixels.

Reading parses keys by whole name (the reference program searches the header text for
substrings, so that ``DISTANCE`` may match inside ``CLOSE_DISTANCE``; nbsim reads each key as
written) and honours ``BYTE_ORDER``.  Writing reproduces the reference program's key order and
number formats; a header that outgrows 512 bytes gets the next multiple of 512 as its
``HEADER_BYTES`` instead of running into the pixel data.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

import attrs
import numpy as np

from nbsim.errors import InputError
from nbsim.io import read_bytes

_KEY = re.compile(r"([A-Za-z0-9_]+)=([^;\n]*)")
_LEADING_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@attrs.frozen
class SMVFrame:
    path: str
    header: dict  # key -> float (numeric keys) ; text values are kept in ``text``
    text: dict
    width: int
    height: int
    header_bytes: int
    pixels: np.ndarray | None  # (height, width) uint16, row = slow index


def _parse_header(text: str) -> tuple[dict, dict]:
    numbers, texts = {}, {}
    for key, value in _KEY.findall(text):
        texts[key] = value.strip()
        m = _LEADING_NUMBER.match(value)
        if m:
            numbers[key] = float(m.group(0))
    return numbers, texts


def read(path: str, *, flag: str, with_pixels: bool) -> SMVFrame:
    """Read an SMV frame; ``flag`` names the command-line flag in error messages."""
    data = read_bytes(path, flag)
    if not data.startswith(b"{\nHEADER_BYT"):
        raise InputError(f"{flag}: {path} does not look like an SMV (ADSC) frame")
    end = data.find(b"}")
    if end < 0:
        raise InputError(f"{flag}: {path}: SMV header has no closing brace")
    numbers, texts = _parse_header(data[: end + 1].decode("latin-1"))
    header_bytes = int(numbers.get("HEADER_BYTES", 512))
    width = int(numbers.get("SIZE1", 0))
    height = int(numbers.get("SIZE2", 0))
    if width == 0:
        width = height = int(numbers.get("DETECTOR_DIMENSIONS", 0))
    if width <= 0 or height <= 0:
        raise InputError(f"{flag}: {path}: SMV header gives no image size (SIZE1/SIZE2)")
    # a truncated frame is refused even where only its header is used: it is not the file meant
    need = header_bytes + 2 * width * height
    if len(data) < need:
        raise InputError(
            f"{flag}: {path} is too short: {len(data)} bytes for a {width}x{height} image "
            f"after a {header_bytes}-byte header"
        )
    pixels = None
    if with_pixels:
        order = texts.get("BYTE_ORDER", "little_endian")
        dtype = ">u2" if order.startswith("big") else "<u2"
        pixels = np.frombuffer(data, dtype=dtype, count=width * height, offset=header_bytes)
        pixels = pixels.astype(np.uint16).reshape(height, width)
    return SMVFrame(path, numbers, texts, width, height, header_bytes, pixels)


def header_text(items: Sequence[tuple[str, str]]) -> bytes:
    """Header bytes for ``items`` (already formatted values), padded as an SMV header.

    Every line ends in ``;``, except that the reference's unterminated ``DIALS_ORIGIN`` line is
    kept as it wrote it where the ``;`` alone would push a 512-byte header past 512.
    """
    for terminated in (True, False):
        text = _header(items, 512, terminated)
        if len(text) <= 512:
            return text + b" " * (512 - len(text))
    header_bytes = 1024
    while len(text := _header(items, header_bytes, True)) > header_bytes:
        header_bytes += 512
    return text + b" " * (header_bytes - len(text))


def _header(items: Sequence[tuple[str, str]], header_bytes: int, terminated: bool) -> bytes:
    lines = ["{", f"HEADER_BYTES={header_bytes};", "DIM=2;",
             f"BYTE_ORDER={'little_endian' if sys.byteorder == 'little' else 'big_endian'};",
             "TYPE=unsigned_short;"]
    lines += [f"{key}={value}{';' if terminated or key != 'DIALS_ORIGIN' else ''}" for key, value in items]
    return ("\n".join(lines) + "\n}\f").encode("ascii")


def encode(items: Sequence[tuple[str, str]], pixels: np.ndarray) -> bytes:
    """A complete SMV file: header, then the pixels as host-order unsigned 16-bit integers."""
    return header_text(items) + np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
