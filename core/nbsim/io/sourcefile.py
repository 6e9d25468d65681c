"""Source files (``-sourcefile``): ``X Y Z weight lambda`` per line.

Columns are separated by any run of spaces, tabs or ``, ; : !``; missing trailing columns
take the defaults (position 10 m upstream along the beam, weight 1, the beam wavelength).
The wavelength is in metres.  Blank lines and ``#`` comment lines are skipped; lines may
end in CR LF.  (The reference program reads a line without a final newline, a CR LF line or
a comment line as zeros; nbsim reads them as written.)
"""

from __future__ import annotations

import re

import numpy as np

from nbsim.errors import InputError
from nbsim.io import read_text

_DELIMS = re.compile(r"[ \t,;:!]+")


def read(path: str, *, flag: str = "-sourcefile", columns: int = 5) -> np.ndarray:
    """Return an (n, columns) float64 array, NaN where a line has fewer columns."""
    lines = read_text(path, flag).splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        text = _DELIMS.sub(" ", line).strip()
        if not text or text.startswith("#"):
            continue
        row = [np.nan] * columns
        for i, tok in enumerate(text.split()[:columns]):
            try:
                row[i] = float(tok)
            except ValueError:
                raise InputError(f"{flag}: {path}:{number}: expected numbers, got {tok!r}") from None
            if not np.isfinite(row[i]):
                raise InputError(f"{flag}: {path}:{number}: values must be finite, got {tok!r}")
        rows.append(row)
    if not rows:
        raise InputError(f"{flag}: {path}: no data lines")
    return np.asarray(rows, dtype=np.float64)
