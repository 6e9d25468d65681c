"""Structure factors of an atomic model (PDB or mmCIF, read and summed by gemmi).

The amplitudes |F(hkl)| of every reflection of the space group's asymmetric unit to ``d_min``
are gemmi's direct sums over the model's atoms and their symmetry mates (International Tables
form factors, occupancies, isotropic or anisotropic B factors); they are then expanded to P1
with Friedel mates (:func:`nbsim.io.mtz.expanded_to_p1`), as merged data are.  The unit cell
is the model's (``specs/inputs.md``).
"""

from __future__ import annotations

import numpy as np

from nbsim.errors import InputError
from nbsim.io.hkl import grid_from_records
from nbsim.io.mtz import ReadStructureFactors, cell_of, expanded_to_p1

FLAG = "--structure"


def read(path: str, d_min: float, default_F: float) -> ReadStructureFactors:
    """|F| of the model in ``path`` for every reflection to ``d_min`` Å, on a P1 grid."""
    import gemmi  # imported here: only runs that read a model pay for it

    try:
        st = gemmi.read_structure(path)
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"{FLAG}: cannot read {path}: {exc}") from None
    if len(st) == 0 or not any(True for _ in st[0].all()):
        raise InputError(f"{FLAG}: {path} has no atoms")
    if not st.cell.is_crystal():
        raise InputError(f"{FLAG}: {path} has no unit cell (a CRYST1 record or _cell items)")
    spacegroup = st.find_spacegroup()
    if spacegroup is None:
        raise InputError(f"{FLAG}: {path}: unknown space group {st.spacegroup_hm!r}")
    if not d_min > 0:
        raise InputError(f"{FLAG}: the resolution limit must be positive, got {d_min:g} Å")
    st.setup_cell_images()  # the symmetry mates gemmi's sums include
    model = st[0]
    asu = gemmi.make_miller_array(st.cell, spacegroup, d_min, 0, True)
    if len(asu) == 0:
        raise InputError(f"{FLAG}: no reflection of {path}'s cell reaches {d_min:g} Å")
    calculator = gemmi.StructureFactorCalculatorX(st.cell)
    amplitudes = np.fromiter((abs(calculator.calculate_sf_from_model(model, h)) for h in asu.tolist()),
                             dtype=np.float64, count=len(asu))
    records = expanded_to_p1(np.asarray(asu, dtype=np.int64), amplitudes, spacegroup)
    return ReadStructureFactors(structure_factors=grid_from_records(records, default_F, path, origin="structure"),
                                cell=cell_of(st.cell), notices=())
