"""MOSFLM orientation matrices: the first nine numbers are [a* b* c*] by columns.

Rows are x, y, z; the vectors are wavelength-scaled (dimensionless), and everything after the
ninth number (missetting angles, U matrix, cell) is ignored, as in the reference program.
"""

from __future__ import annotations

import math

from nbsim.errors import InputError
from nbsim.io import read_text


def read(path: str) -> tuple[tuple[float, float, float], ...]:
    """Return (a*, b*, c*) as read (still scaled by the wavelength)."""
    numbers = []
    for number, line in enumerate(read_text(path, "-mat").splitlines(), start=1):
        for tok in line.split():
            if len(numbers) == 9:
                break
            try:
                value = float(tok)
            except ValueError:
                raise InputError(f"-mat: {path}:{number}: expected nine numbers, found {tok!r}") from None
            if not math.isfinite(value):
                raise InputError(f"-mat: {path}:{number}: matrix elements must be finite, got {tok!r}")
            numbers.append(value)
    if len(numbers) < 9:
        raise InputError(f"-mat: {path}: expected nine numbers, found {len(numbers)}")
    n = numbers
    return ((n[0], n[3], n[6]), (n[1], n[4], n[7]), (n[2], n[5], n[8]))
