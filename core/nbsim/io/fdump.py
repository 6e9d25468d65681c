"""The ``Fdump.bin`` structure-factor cache.

Layout: the text ``h_min h_max k_min k_max l_min l_max`` (decimal, one space apart), a
newline and a form feed, then the whole grid (spare planes included) as host-order float64,
l fastest.  The reference program skips any whitespace after the form feed while reading,
which misaligns the data when the first value's first byte happens to be a whitespace
character; nbsim reads exactly the two separator bytes.
"""

from __future__ import annotations

import re

import numpy as np

from nbsim.errors import InputError
from nbsim.io import read_bytes
from nbsim.model.config import StructureFactors

_HEADER = re.compile(rb"^\s*(-?\d+) (-?\d+) (-?\d+) (-?\d+) (-?\d+) (-?\d+)\n\f")


def encode(sf: StructureFactors) -> bytes:
    head = "%d %d %d %d %d %d\n\f" % (sf.h_min, sf.h_max, sf.k_min, sf.k_max, sf.l_min, sf.l_max)
    return head.encode("ascii") + np.ascontiguousarray(sf.grid, dtype=np.float64).tobytes()


class CacheError(InputError):
    """A cache file that is not one; ``reason`` says why, without the file's name."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"-dump: {path}: {reason}")
        self.reason = reason


def read(path: str) -> StructureFactors:
    data = read_bytes(path, "-dump")
    m = _HEADER.match(data)
    if not m:
        raise CacheError(path, "not a structure-factor cache (bad header)")
    h_min, h_max, k_min, k_max, l_min, l_max = (int(x) for x in m.groups())
    shape = (h_max - h_min + 2, k_max - k_min + 2, l_max - l_min + 2)
    if min(shape) < 2:
        raise CacheError(path, "empty index ranges in the header")
    need = 8 * shape[0] * shape[1] * shape[2]
    body = data[m.end():]
    if len(body) != need:
        raise CacheError(path, f"expected {need} bytes of structure factors, found {len(body)}")
    grid = np.frombuffer(body, dtype=np.float64).reshape(shape).copy()
    count = (shape[0] - 1) * (shape[1] - 1) * (shape[2] - 1)
    return StructureFactors(grid=grid, h_min=h_min, k_min=k_min, l_min=l_min, h_max=h_max,
                            k_max=k_max, l_max=l_max, count=count, origin="dump", path=path)
