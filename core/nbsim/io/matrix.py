"""MOSFLM orientation matrices: the first nine numbers are [a* b* c*] by columns.

Rows are x, y, z; the vectors are wavelength-scaled (dimensionless), and everything after the
ninth number (missetting angles, U matrix, cell) is ignored, as in the reference program.
"""

from __future__ import annotations

from nbsim.errors import InputError
from nbsim.io import read_text


def read(path: str) -> tuple[tuple[float, float, float], ...]:
    """Return (a*, b*, c*) as read (still scaled by the wavelength)."""
    tokens = read_text(path, "-mat").split()
    numbers = []
    for tok in tokens[:9]:
        try:
            numbers.append(float(tok))
        except ValueError:
            raise InputError(f"-mat: {path}: expected nine numbers, found {tok!r}") from None
    if len(numbers) < 9:
        raise InputError(f"-mat: {path}: expected nine numbers, found {len(numbers)}")
    n = numbers
    return ((n[0], n[3], n[6]), (n[1], n[4], n[7]), (n[2], n[5], n[8]))
