"""Structure factors of an atomic model (PDB or mmCIF, read and summed by gemmi).

The amplitudes |F(hkl)| of every reflection of the space group's asymmetric unit to ``d_min``
are gemmi's direct sums over the model's atoms and their symmetry mates (International Tables
form factors, occupancies, isotropic or anisotropic B factors); they are then expanded to P1
with Friedel mates (:func:`nbsim.io.mtz.expanded_to_p1`), as merged data are.  With a photon
energy (``--anomalous``) each element also scatters f' + i f'' (Cromer-Liberman, gemmi), so
F(h) and F(-h) are both computed and expanded with the space group's rotations only.  The
unit cell is the model's (``specs/inputs.md``).
"""

from __future__ import annotations

import numpy as np

from nbsim.errors import InputError
from nbsim.io.hkl import grid_from_records
from nbsim.io.mtz import ReadStructureFactors, cell_of, expanded_to_p1

FLAG = "--structure"


def read(path: str, d_min: float, default_F: float, *, energy: float | None = None) -> ReadStructureFactors:
    """|F| of the model in ``path`` for every reflection to ``d_min`` Å, on a P1 grid; with
    ``energy`` (eV), including each element's f' and f'' at that energy."""
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
    asu = gemmi.make_miller_array(st.cell, spacegroup, d_min, 0, True)  # one of each Friedel pair
    if len(asu) == 0:
        raise InputError(f"{FLAG}: no reflection of {path}'s cell reaches {d_min:g} Å")
    calculator = gemmi.StructureFactorCalculatorX(st.cell)
    reflections = asu.tolist()
    F = np.array([calculator.calculate_sf_from_model(model, h) for h in reflections], dtype=np.complex128)
    hkl = np.asarray(asu, dtype=np.int64)
    if energy is None:
        records = expanded_to_p1(hkl, _amplitudes(F), spacegroup)
    else:
        factors, sums = _anomalous_terms(calculator, model, reflections, energy)
        # occupancies, form factors and Debye-Waller factors are even in h, so each sum at -h is
        # the conjugate of its value at h; the anomalous terms then break Friedel's law
        F_plus, F_minus = F + sums @ factors, F.conj() + sums.conj() @ factors
        records = expanded_to_p1(np.concatenate((hkl, -hkl)), _amplitudes(np.concatenate((F_plus, F_minus))),
                                 spacegroup, friedel=False)
    return ReadStructureFactors(structure_factors=grid_from_records(records, default_F, path, origin="structure"),
                                cell=cell_of(st.cell), notices=())


def _amplitudes(F: np.ndarray) -> np.ndarray:
    """|F|, by Python's complex abs: numpy's differs from it in the last bit for some values,
    and the amplitudes without --anomalous are those nbsim has always computed."""
    return np.fromiter(map(abs, F.tolist()), dtype=np.float64, count=len(F))


def _anomalous_terms(calculator, model, reflections: list, energy: float) -> tuple[np.ndarray, np.ndarray]:
    """f' + i f'' at ``energy`` eV of each element of ``model`` that has them, and for every
    reflection (rows) the sums they multiply (columns): over that element's atoms and their
    symmetry mates, of occupancy x Debye-Waller factor x exp(2 pi i h.x).

    gemmi's addends are real (and single precision), so they cannot carry f''.  Its Mott-Bethe
    sum ``calculate_mb_z`` is that sum weighted by -Z in double precision; on a model of one
    element's atoms, divided by -Z, it is the element's sum.  Elements the Cromer-Liberman
    tables leave out (H, He, beyond U, unknown ones) have f' = f'' = 0 and add nothing.
    """
    import gemmi

    by_element: dict[str, list] = {}
    for cra in model.all():
        by_element.setdefault(cra.atom.element.name, []).append(cra.atom)
    factors, models = [], []
    for name, atoms in by_element.items():
        z = gemmi.Element(name).atomic_number
        fprime, fdoubleprime = gemmi.cromer_liberman(z=z, energy=energy)
        if fprime != 0.0 or fdoubleprime != 0.0:
            factors.append(complex(fprime, fdoubleprime))
            models.append((_model_of(atoms), z))
    sums = np.zeros((len(reflections), len(factors)), dtype=np.complex128)
    for column, (atoms, z) in enumerate(models):
        sums[:, column] = [calculator.calculate_mb_z(atoms, h, False) / -z for h in reflections]
    return np.array(factors, dtype=np.complex128), sums


def _model_of(atoms: list):
    """A gemmi model holding copies of ``atoms``."""
    import gemmi

    residue = gemmi.Residue()
    for atom in atoms:
        residue.add_atom(atom)
    chain = gemmi.Chain("A")
    chain.add_residue(residue)
    model = gemmi.Model("1")
    model.add_chain(chain)
    return model
