"""--structure: structure factors of an atomic model, checked against a direct sum over atoms
written here (form factors from the International Tables coefficients, f' and f'' from gemmi's
Cromer-Liberman code, symmetry by hand); --anomalous."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest
from click.testing import CliRunner

from hkl_round_trip import assert_same_image_through_hkl
from nbsim import StructureInputs, config_from_argv
from nbsim.errors import InputError, UsageError
from nbsim_cli.app import cli

CELL = (20.0, 24.0, 28.0, 90.0, 100.0, 90.0)
FLAGS = ["-N", "3", "-detpixels", "24", "-lambda", "1", "-distance", "60", "-nonoise", "-nopgm", "-noprogress"]
#: P 1 21 1: x, y, z and -x, y + 1/2, -z
OPERATORS = ((np.diag([1.0, 1.0, 1.0]), np.zeros(3)), (np.diag([-1.0, 1.0, -1.0]), np.array([0.0, 0.5, 0.0])))
ATOMS = [("C", (0.11, 0.23, 0.31), 1.0, 12.0), ("O", (0.41, 0.07, 0.77), 0.8, 20.0),
         ("N", (0.63, 0.52, 0.18), 1.0, 8.0), ("S", (0.29, 0.81, 0.56), 0.5, 30.0)]

#: an acentric model with an anomalous scatterer: selenium in P 21 21 21, at Se's K edge (12658 eV)
ANOMALOUS_CELL = (20.0, 24.0, 28.0, 90.0, 90.0, 90.0)
ANOMALOUS_GROUP = "P 21 21 21"
ANOMALOUS_OPERATORS = tuple((np.diag(rotation), np.array(translation)) for rotation, translation in (
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), ((-1.0, -1.0, 1.0), (0.5, 0.0, 0.5)),
    ((-1.0, 1.0, -1.0), (0.0, 0.5, 0.5)), ((1.0, -1.0, -1.0), (0.5, 0.5, 0.0))))
ANOMALOUS_ATOMS = [("Se", (0.13, 0.27, 0.36), 1.0, 15.0), ("C", (0.41, 0.07, 0.77), 1.0, 12.0),
                   ("N", (0.63, 0.52, 0.18), 0.9, 10.0), ("O", (0.29, 0.81, 0.56), 1.0, 20.0),
                   ("H", (0.71, 0.35, 0.92), 1.0, 20.0)]
ANOMALOUS_FLAGS = [*FLAGS, "-lambda", "0.979"]  # the last of -lambda and -energy sets the wavelength, as in nanoBragg


def write_model(path, fmt="pdb", cell=CELL, spacegroup="P 1 21 1", atoms=ATOMS):
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(*cell)
    st.spacegroup_hm = spacegroup
    model, chain, residue = gemmi.Model("1"), gemmi.Chain("A"), gemmi.Residue()
    residue.name, residue.seqid = "LIG", gemmi.SeqId(1, " ")
    for i, (element, fractional, occupancy, b) in enumerate(atoms):
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


def direct_sum(hkl, atoms, cell=gemmi.UnitCell(*CELL), operators=OPERATORS, energy=None):
    """|F(hkl)|: occupancy x (IT92 form factor + f' + i f'' at ``energy`` eV) x exp(-B s^2/4) x phase,
    over atoms and operators."""
    s2 = cell.calculate_1_d2(list(hkl))
    F = 0j
    for element, fractional, occupancy, b in atoms:
        a1, a2, a3, a4, b1, b2, b3, b4, c = gemmi.Element(element).it92.get_coefs()
        f0 = sum(a * math.exp(-bb * s2 / 4) for a, bb in zip((a1, a2, a3, a4), (b1, b2, b3, b4))) + c
        if energy is not None:
            fprime, fdoubleprime = gemmi.cromer_liberman(z=gemmi.Element(element).atomic_number, energy=energy)
            f0 += fprime + 1j * fdoubleprime
        for rotation, translation in operators:
            x = rotation @ np.array(fractional) + translation
            F += occupancy * f0 * math.exp(-b * s2 / 4) * np.exp(2j * math.pi * np.dot(hkl, x))
    return abs(F)


def absent(hkl, spacegroup="P 1 21 1"):
    return gemmi.SpaceGroup(spacegroup).operations().is_systematically_absent(list(hkl))


def grid_items(sf):
    """((h, k, l), F) of every point of a structure-factor grid."""
    for h in range(sf.h_min, sf.h_max + 1):
        for k in range(sf.k_min, sf.k_max + 1):
            for l in range(sf.l_min, sf.l_max + 1):
                yield (h, k, l), float(sf.grid[h - sf.h_min, k - sf.k_min, l - sf.l_min])


def anomalous_grid(tmp_path, flags=ANOMALOUS_FLAGS, anomalous=True):
    """The P 21 21 21 selenium model's amplitudes to 3 Å, as {(h, k, l): F} (beyond the limit
    and absences left out)."""
    path = tmp_path / "se.pdb"
    write_model(path, cell=ANOMALOUS_CELL, spacegroup=ANOMALOUS_GROUP, atoms=ANOMALOUS_ATOMS)
    config = config_from_argv(flags, structure=StructureInputs(structure=str(path), d_min=3.0, anomalous=anomalous))
    sf = config.crystal.structure_factors
    cell = gemmi.UnitCell(*ANOMALOUS_CELL)
    within = {hkl: F for hkl, F in grid_items(sf)
              if hkl != (0, 0, 0) and cell.calculate_d(list(hkl)) >= 3.0 and not absent(hkl, ANOMALOUS_GROUP)}
    assert len(within) == sf.count > 500
    return within, atoms_as_read(path)


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


@pytest.mark.parametrize("anomalous", [[], ["--anomalous"]])
def test_a_structure_renders_and_writes_its_hkl(tmp_path, monkeypatch, anomalous):
    monkeypatch.chdir(tmp_path)
    write_model(tmp_path / "m.pdb")
    assert_same_image_through_hkl(tmp_path, ["--structure", "m.pdb", "--d-min", "2.5", *anomalous], FLAGS, CELL)
    written = {tuple(int(x) for x in r[:3]): r[3] for r in np.loadtxt(tmp_path / "written.hkl", ndmin=2)}
    friedel_law = all(F == written[tuple(-x for x in hkl)] for hkl, F in written.items())
    assert friedel_law != bool(anomalous)  # the sulphur's f'' reaches the written file through the command line


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


@pytest.mark.parametrize("beam", [["-lambda", "0.979"], ["-energy", "12664"]])
def test_anomalous_amplitudes_match_a_direct_sum_with_f_prime_and_f_double_prime(tmp_path, beam):
    """F(h) and F(-h) of the selenium model, each against the direct sum at the beam's energy."""
    amplitudes, atoms = anomalous_grid(tmp_path, [*FLAGS, *beam])
    wavelength = float(beam[1]) if beam[0] == "-lambda" else 12398.42 / float(beam[1])
    cell, energy = gemmi.UnitCell(*ANOMALOUS_CELL), 12398.42 / wavelength
    for hkl, F in amplitudes.items():
        expected = direct_sum(hkl, atoms, cell, ANOMALOUS_OPERATORS, energy)
        assert F == pytest.approx(expected, rel=1e-6, abs=1e-6), hkl
        assert amplitudes[tuple(-x for x in hkl)] == pytest.approx(
            direct_sum(tuple(-x for x in hkl), atoms, cell, ANOMALOUS_OPERATORS, energy), rel=1e-6, abs=1e-6)


def test_anomalous_scattering_breaks_friedel_law_for_acentric_reflections_only(tmp_path):
    with_anomalous, _ = anomalous_grid(tmp_path)
    without, _ = anomalous_grid(tmp_path, anomalous=False)
    assert with_anomalous.keys() == without.keys()

    def bijvoet_difference(amplitudes, hkl):
        return abs(amplitudes[hkl] - amplitudes[tuple(-x for x in hkl)]) / amplitudes[hkl]

    acentric = [hkl for hkl in with_anomalous if 0 not in hkl]  # P 21 21 21: centric are the hk0, h0l, 0kl zones
    centric = [hkl for hkl in with_anomalous if 0 in hkl]
    assert max(bijvoet_difference(with_anomalous, hkl) for hkl in acentric) > 0.05
    assert max(bijvoet_difference(with_anomalous, hkl) for hkl in centric) < 1e-12
    assert all(bijvoet_difference(without, hkl) == 0.0 for hkl in without)


def test_anomalous_symmetry_equivalents_keep_their_amplitudes(tmp_path):
    amplitudes, _ = anomalous_grid(tmp_path)
    for (h, k, l), F in amplitudes.items():
        for rotation, _ in ANOMALOUS_OPERATORS:
            equivalent = tuple(int(x) for x in np.array([h, k, l]) @ rotation)
            assert amplitudes[equivalent] == pytest.approx(F, rel=1e-12), ((h, k, l), equivalent)


@pytest.mark.parametrize("options, named", [
    (["--anomalous", "--mtz", "a.mtz", "--mtz-column", "FP"], "--mtz"),
    (["--anomalous"], "--structure is not given"),
])
def test_anomalous_without_a_structure_is_a_one_line_usage_error(tmp_path, monkeypatch, options, named):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", *options, "-cell", "50", "-default_F", "10", *FLAGS])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == UsageError.exit_code and len(lines) == 1, result.stderr
    assert lines[0].startswith("nbsim: error: --anomalous") and named in lines[0]
    assert list(tmp_path.iterdir()) == []
