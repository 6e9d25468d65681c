"""MTZ reflection files (read with gemmi): merged amplitudes or intensities, expanded to P1.

One column is read (``--mtz-column``): amplitudes (column type F) as they are, or intensities
(type J) as their square roots, negative intensities as 0.  The merged reflections are
expanded to the whole sphere with the space group's rotations and their Friedel mates, which
is what the simulator's P1 grid needs (``specs/inputs.md``).  Reflections without a value in
the column (missing data) are left out, so that the grid holds ``-default_F`` there.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from nbsim.errors import InputError
from nbsim.io.hkl import grid_from_records
from nbsim.model.config import StructureFactors

FLAG = "--mtz"
#: the column types nbsim reads: amplitude, intensity
AMPLITUDE, INTENSITY = "F", "J"


@attrs.frozen
class ReadStructureFactors:
    """Structure factors read from a file that also gives the unit cell (an MTZ, a model)."""

    structure_factors: StructureFactors
    cell: tuple[float, float, float, float, float, float]  # a, b, c (Å), alpha, beta, gamma (radians)
    notices: tuple[str, ...]  # what nbsim says on stderr about the data (negative intensities)


def cell_of(cell) -> tuple[float, float, float, float, float, float]:
    """A gemmi unit cell as (a, b, c) in Å and angles in radians."""
    return (cell.a, cell.b, cell.c, math.radians(cell.alpha), math.radians(cell.beta), math.radians(cell.gamma))


def read(path: str, label: str | None, default_F: float) -> ReadStructureFactors:
    """The column ``label`` of the MTZ file ``path`` on a P1 grid (``-default_F`` elsewhere)."""
    import gemmi  # imported here: only runs that read an MTZ pay for it

    try:
        mtz = gemmi.read_mtz_file(path)
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"{FLAG}: cannot read {path}: {exc}") from None
    usable = [c.label for c in mtz.columns if c.type in (AMPLITUDE, INTENSITY)]
    if label is None:
        raise InputError(f"{FLAG}: give --mtz-column LABEL (amplitude or intensity columns in {path}: "
                         f"{', '.join(usable) or 'none'})")
    column = mtz.column_with_label(label)
    choices = f"amplitude or intensity columns in {path}: {', '.join(usable) or 'none'}"
    if column is None:
        raise InputError(f"--mtz-column {label}: no such column ({choices})")
    if column.type not in (AMPLITUDE, INTENSITY):
        raise InputError(f"--mtz-column {label}: a column of type {column.type}, not F (amplitudes) or "
                         f"J (intensities) ({choices})")
    if len(mtz.batches) > 0:
        raise InputError(f"{FLAG}: {path} holds unmerged data ({len(mtz.batches)} batches); give merged data")
    data = np.array(mtz, copy=True)
    hkl = data[:, :3].astype(np.int64)
    values = data[:, mtz.column_labels().index(label)]
    present = np.isfinite(values)
    hkl, values = hkl[present], values[present]
    if len(values) == 0:
        raise InputError(f"--mtz-column {label}: {path} has no values in that column")
    notices = []
    if column.type == INTENSITY:
        negative = int(np.count_nonzero(values < 0))
        if negative:
            notices.append(f"{FLAG}: {negative} of {len(values)} intensities in {label} are negative; "
                           "their amplitudes are taken as 0")
        values = np.sqrt(np.clip(values, 0.0, None))
    records = expanded_to_p1(hkl, values, mtz.spacegroup or gemmi.SpaceGroup("P 1"))
    return ReadStructureFactors(
        structure_factors=grid_from_records(records, default_F, path, origin="mtz"),
        cell=cell_of(mtz.cell), notices=tuple(notices))


def expanded_to_p1(hkl: np.ndarray, values: np.ndarray, spacegroup, *, friedel: bool = True) -> np.ndarray:
    """(n, 4) h, k, l, F records of every symmetry equivalent of the reflections ``hkl`` and,
    with ``friedel``, of their Friedel mates (amplitudes are the same on all of them), each
    index once.  Without ``friedel`` (anomalous data), ``hkl`` must hold h and -h itself."""
    import gemmi

    rotations = sorted({tuple(map(tuple, op.rot)) for op in spacegroup.operations()})  # centring repeats them
    parts = []
    for rot in rotations:
        R = np.array(rot, dtype=np.int64) // gemmi.Op.DEN  # integers over DEN
        equivalent = hkl @ R  # h' = h R, as gemmi's Op.apply_to_hkl
        parts += [equivalent, -equivalent] if friedel else [equivalent]
    every = np.concatenate(parts)
    F = np.tile(values, len(parts))
    unique, first = np.unique(every, axis=0, return_index=True)
    return np.column_stack((unique.astype(np.float64), F[first]))
