"""HKL text files: one reflection per line, ``h k l F`` (further columns are ignored).

The reference program reads groups of four numbers regardless of line breaks, so a file
with a phase or sigma column is read shifted; nbsim reads each line's first four columns.
Indices must be integers (``1`` or ``1.0``); blank lines and lines starting with ``#`` are
skipped.  The grid layout, the spare planes and the ``-default_F`` fill follow the reference
(``specs/outputs.md``).
"""

from __future__ import annotations

import numpy as np

from nbsim.errors import InputError
from nbsim.io import read_text
from nbsim.model.config import StructureFactors


def read_records(path: str) -> np.ndarray:
    """Return an (n, 4) float64 array of h, k, l, F records."""
    lines = read_text(path, "-hkl").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.replace(",", " ").split()
        if len(fields) < 4:
            raise InputError(f"-hkl: {path}:{number}: expected 'h k l F', got {line.strip()!r}")
        try:
            h, k, l, f = (float(x) for x in fields[:4])
        except ValueError:
            raise InputError(f"-hkl: {path}:{number}: expected numbers 'h k l F', got {line.strip()!r}") from None
        if not np.isfinite((h, k, l, f)).all():
            raise InputError(f"-hkl: {path}:{number}: h k l F must be finite numbers, got {line.strip()!r}")
        for name, value in (("h", h), ("k", k), ("l", l)):
            if value != int(value):
                raise InputError(f"-hkl: {path}:{number}: index {name} must be an integer, got {value:g}")
        rows.append((h, k, l, f))
    if not rows:
        raise InputError(f"-hkl: {path}: no reflections found")
    return np.asarray(rows, dtype=np.float64)


def grid_from_records(records: np.ndarray, default_F: float, path: str, origin: str = "hkl") -> StructureFactors:
    hkl = records[:, :3].astype(np.int64)
    lo = hkl.min(axis=0)
    hi = hkl.max(axis=0)
    ranges = hi - lo + 1
    grid = np.zeros(tuple(ranges + 1), dtype=np.float64)
    if default_F != 0.0:
        grid[: ranges[0], : ranges[1], : ranges[2]] = default_F
    idx = hkl - lo
    # a repeated index keeps the last record, as in the reference
    flat = np.ravel_multi_index(idx.T, grid.shape)
    _, first_from_end = np.unique(flat[::-1], return_index=True)
    keep = len(flat) - 1 - first_from_end
    grid.reshape(-1)[flat[keep]] = records[keep, 3]
    return StructureFactors(
        grid=grid, h_min=int(lo[0]), k_min=int(lo[1]), l_min=int(lo[2]),
        h_max=int(hi[0]), k_max=int(hi[1]), l_max=int(hi[2]),
        count=len(records), origin=origin, path=path,
    )


def read(path: str, default_F: float) -> StructureFactors:
    return grid_from_records(read_records(path), default_F, path)


def encode(sf: StructureFactors) -> bytes:
    """An HKL file of every point of the grid (``h k l F``, F to 17 significant digits), which
    the reference program (or ``-hkl``) reads back into the same grid and values."""
    h, k, l = np.meshgrid(np.arange(sf.h_min, sf.h_max + 1), np.arange(sf.k_min, sf.k_max + 1),
                          np.arange(sf.l_min, sf.l_max + 1), indexing="ij")
    F = sf.grid[: sf.h_max - sf.h_min + 1, : sf.k_max - sf.k_min + 1, : sf.l_max - sf.l_min + 1]
    lines = [f"{a} {b} {c} {f!r}\n" for a, b, c, f in zip(h.ravel().tolist(), k.ravel().tolist(), l.ravel().tolist(),
                                                          F.ravel().tolist())]
    return "".join(lines).encode()
