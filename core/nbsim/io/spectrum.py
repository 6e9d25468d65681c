"""Beam spectra (``--spectrum FILE``): two columns, photon energy or wavelength, and a weight.

The unit is told by a header, a comment line whose words after the ``#`` are the two column
names: ``# energy_eV weight`` or ``# wavelength_A weight`` (any spacing and letter case).  It
must come before the first value line, and only once; other ``#`` lines and the text after a
``#`` on a value line are comments, blank lines are skipped, columns are separated by spaces or
tabs.  Each value line holds exactly two numbers: a positive energy (eV) or wavelength (Å) and a
finite, non-negative weight; the weights must not all be 0 (``specs/inputs.md``).  Every
mistake is one line naming the option, the file and the line.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from nbsim.errors import InputError
from nbsim.io import read_text

#: the header of each unit: the words after '#', lower case
HEADERS = {("energy_ev", "weight"): "energy_eV", ("wavelength_a", "weight"): "wavelength_A"}
FLAG = "--spectrum"


@attrs.frozen(eq=False)
class SpectrumTable:
    """A spectrum file as written: its unit ("energy_eV" or "wavelength_A"), values and weights."""

    unit: str
    values: np.ndarray  # (n,) eV or Å, as the unit says
    weights: np.ndarray  # (n,)


def read(path: str) -> SpectrumTable:
    """The file's lines; :class:`~nbsim.errors.InputError` for a file that breaks the format."""
    unit = None
    values, weights = [], []
    for number, line in enumerate(read_text(path, FLAG).splitlines(), start=1):
        text, _, comment = line.partition("#")
        where = f"{FLAG}: {path}:{number}"
        header = HEADERS.get(tuple(word.lower() for word in comment.split())) if not text.strip() else None
        if header is not None:
            if unit is not None:
                raise InputError(f"{where}: a second header; the file's unit is {unit}, told on an earlier line")
            if values:
                raise InputError(f"{where}: the header must come before the first value line")
            unit = header
            continue
        words = text.split()
        if not words:
            continue
        if unit is None:
            raise InputError(f"{where}: a value line before the header '# energy_eV weight' or "
                             "'# wavelength_A weight' that tells the unit")
        if len(words) != 2:
            raise InputError(f"{where}: expected two numbers ({unit} weight), got {len(words)} columns")
        try:
            value, weight = float(words[0]), float(words[1])
        except ValueError:
            raise InputError(f"{where}: expected two numbers ({unit} weight), got {text.strip()!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{where}: the {unit.split('_')[0]} must be positive and finite, got {words[0]!r}")
        if not (math.isfinite(weight) and weight >= 0):
            raise InputError(f"{where}: the weight must be non-negative and finite, got {words[1]!r}")
        values.append(value)
        weights.append(weight)
    if unit is None:
        raise InputError(f"{FLAG}: {path}: no header '# energy_eV weight' or '# wavelength_A weight' telling the unit")
    if not values:
        raise InputError(f"{FLAG}: {path}: no value lines")
    if not any(weights):
        raise InputError(f"{FLAG}: {path}: every weight is 0: the beam would have no photons")
    return SpectrumTable(unit=unit, values=np.asarray(values), weights=np.asarray(weights))
