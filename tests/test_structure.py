"""--structure: structure factors of an atomic model, checked against a direct sum over atoms
written here (form factors from the International Tables coefficients, symmetry by hand)."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from hkl_round_trip import assert_same_image_through_hkl
from nbsim import StructureInputs, config_from_argv
from nbsim.errors import InputError, UsageError

CELL = (20.0, 24.0, 28.0, 90.0, 100.0, 90.0)
FLAGS = ["-N", "3", "-detpixels", "24", "-lambda", "1", "-distance", "60", "-nonoise", "-nopgm", "-noprogress"]
#: P 1 21 1: x, y, z and -x, y + 1/2, -z
OPERATORS = ((np.diag([1.0, 1.0, 1.0]), np.zeros(3)), (np.diag([-1.0, 1.0, -1.0]), np.array([0.0, 0.5, 0.0])))
ATOMS = [("C", (0.11, 0.23, 0.31), 1.0, 12.0), ("O", (0.41, 0.07, 0.77), 0.8, 20.0),
         ("N", (0.63, 0.52, 0.18), 1.0, 8.0), ("S", (0.29, 0.81, 0.56), 0.5, 30.0)]


def write_model(path, fmt="pdb"):
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(*CELL)
    st.spacegroup_hm = "P 1 21 1"
    model, chain, residue = gemmi.Model("1"), gemmi.Chain("A"), gemmi.Residue()
    residue.name, residue.seqid = "LIG", gemmi.SeqId(1, " ")
    for i, (element, fractional, occupancy, b) in enumerate(ATOMS):
        atom = gemmi.Atom()
        atom.name, atom.element = f"{element}{i}", gemmi.Element(element)
        atom.pos = st.cell.orthogonalize(gemmi.Fractional(*fractional))
        atom.occ, atom.b_iso = occupancy, b
        residue.add_atom(atom)
    chain.add_residue(residue)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    if fmt == "pdb":
        st.write_pdb(str(path))
    else:
        st.make_mmcif_document().write_file(str(path))


def atoms_as_read(path):
    """(element, fractional position, occupancy, B) of the file's atoms, as a file stores them
    (PDB rounds coordinates to 1e-3 Å)."""
    st = gemmi.read_structure(str(path))
    atoms = [cra.atom for cra in st[0].all()]
    return [(a.element.name, tuple(st.cell.fractionalize(a.pos).tolist()), a.occ, a.b_iso) for a in atoms]


def direct_sum(hkl, atoms, cell=gemmi.UnitCell(*CELL)):
    """|F(hkl)|: occupancy x IT92 form factor x exp(-B s^2/4) x phase, over atoms and operators."""
    s2 = cell.calculate_1_d2(list(hkl))
    F = 0j
    for element, fractional, occupancy, b in atoms:
        a1, a2, a3, a4, b1, b2, b3, b4, c = gemmi.Element(element).it92.get_coefs()
        f0 = sum(a * math.exp(-bb * s2 / 4) for a, bb in zip((a1, a2, a3, a4), (b1, b2, b3, b4))) + c
        for rotation, translation in OPERATORS:
            x = rotation @ np.array(fractional) + translation
            F += occupancy * f0 * math.exp(-b * s2 / 4) * np.exp(2j * math.pi * np.dot(hkl, x))
    return abs(F)


def absent(hkl):
    return gemmi.SpaceGroup("P 1 21 1").operations().is_systematically_absent(list(hkl))


@pytest.mark.parametrize("fmt", ["pdb", "cif"])
def test_model_amplitudes_match_a_direct_sum_over_atoms(tmp_path, fmt):
    path = tmp_path / f"model.{fmt}"
    write_model(path, fmt)
    config = config_from_argv(FLAGS, structure=StructureInputs(structure=str(path), d_min=3.0))
    sf = config.crystal.structure_factors
    cell = gemmi.UnitCell(*CELL)
    atoms = atoms_as_read(path)
    assert [a[0] for a in atoms] == [a[0] for a in ATOMS]
    checked = 0
    for h in range(sf.h_min, sf.h_max + 1):
        for k in range(sf.k_min, sf.k_max + 1):
            for l in range(sf.l_min, sf.l_max + 1):
                value = sf.grid[h - sf.h_min, k - sf.k_min, l - sf.l_min]
                if (h, k, l) == (0, 0, 0) or cell.calculate_d([h, k, l]) < 3.0:
                    assert value == 0.0  # beyond the limit: -default_F
                    continue
                assert value == pytest.approx(direct_sum((h, k, l), atoms), rel=1e-6, abs=1e-6), (h, k, l)
                checked += not absent((h, k, l))  # absences are 0 and not listed
    assert checked == sf.count > 500
    assert config.crystal.cell == pytest.approx((*CELL[:3], *(math.radians(x) for x in CELL[3:])))


def test_the_default_limit_is_the_detector_corner(tmp_path):
    """Without --d-min the reflections reach the detector's corners at the shortest wavelength."""
    from nbsim.model.geometry import corner_resolution

    write_model(tmp_path / "m.pdb")
    flags = [*FLAGS, "-dispersion", "10", "-detpixels", "128", "-pixel", "0.3"]
    config = config_from_argv(flags, structure=StructureInputs(structure=str(tmp_path / "m.pdb")))
    d = corner_resolution(config.detector, config.beam.direction, 1e-10 * 0.95)
    size, distance = 128 * 0.3e-3, 60e-3  # the farthest corner from the direct-beam spot, by hand
    Fbeam, Sbeam = config.detector.Fbeam, config.detector.Sbeam
    corner = math.hypot(max(Fbeam, size - Fbeam), max(Sbeam, size - Sbeam))
    assert d == pytest.approx(0.95 / (2 * math.sin(math.atan2(corner, distance) / 2)), rel=1e-9)
    sf = config.crystal.structure_factors
    cell = gemmi.UnitCell(*CELL)
    indices = [(h, k, l) for h in range(sf.h_min, sf.h_max + 1) for k in range(sf.k_min, sf.k_max + 1)
               for l in range(sf.l_min, sf.l_max + 1)
               if sf.grid[h - sf.h_min, k - sf.k_min, l - sf.l_min] != 0.0]
    assert min(cell.calculate_d(list(i)) for i in indices) >= d - 1e-9
    assert 1000 < sf.count == sum(1 for h in range(-20, 21) for k in range(-20, 21) for l in range(-20, 21)
                                  if (h, k, l) != (0, 0, 0) and cell.calculate_d([h, k, l]) >= d
                                  and not absent((h, k, l)))


def test_a_structure_renders_and_writes_its_hkl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_model(tmp_path / "m.pdb")
    assert_same_image_through_hkl(tmp_path, ["--structure", "m.pdb", "--d-min", "2.5"], FLAGS, CELL)


def test_bad_structure_input(tmp_path):
    (tmp_path / "junk.pdb").write_text("HELLO\n")
    with pytest.raises(InputError, match="--structure: .*junk.pdb has no atoms|--structure: cannot read"):
        config_from_argv(FLAGS, structure=StructureInputs(structure=str(tmp_path / "junk.pdb")))
    with pytest.raises(InputError, match="--structure: cannot read"):
        config_from_argv(FLAGS, structure=StructureInputs(structure=str(tmp_path / "missing.cif")))
    write_model(tmp_path / "m.pdb")
    with pytest.raises(UsageError, match="--mtz and --structure both give structure factors"):
        config_from_argv(FLAGS, structure=StructureInputs(structure=str(tmp_path / "m.pdb"), mtz="x.mtz",
                                                          mtz_column="F"))
    with pytest.raises(UsageError, match="--d-min is the resolution limit of a --structure model"):
        config_from_argv(FLAGS, structure=StructureInputs(d_min=2.0))
