"""--mtz: merged amplitudes or intensities from an MTZ file, expanded to P1; --write-hkl."""

from __future__ import annotations

import json
import math

import gemmi
import numpy as np
import pytest
from click.testing import CliRunner

from hkl_round_trip import assert_same_image_through_hkl
from nbsim import StructureInputs, config_from_argv
from nbsim.errors import InputError, UsageError
from nbsim_cli.app import cli

CELL = (40.0, 50.0, 60.0, 90.0, 100.0, 90.0)
FLAGS = ["-N", "3", "-detpixels", "24", "-lambda", "1", "-distance", "60", "-nonoise", "-nopgm", "-noprogress"]


def _amplitude(h, k, l):
    return 10.0 + h + 2.0 * k + 3.0 * l * l


def _asu_reflections(spacegroup: str, limit: int = 3):
    asu = gemmi.ReciprocalAsu(gemmi.SpaceGroup(spacegroup))
    r = range(-limit, limit + 1)
    return [(h, k, l) for h in r for k in r for l in r if (h, k, l) != (0, 0, 0) and asu.is_in([h, k, l])]


def write_mtz(path, spacegroup="P 1 21 1", intensities=None, batches=0):
    """A merged MTZ of amplitudes FP (and intensities I) on the reciprocal ASU of ``spacegroup``."""
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup(spacegroup)
    mtz.set_cell_for_all(gemmi.UnitCell(*CELL))
    mtz.add_dataset("sim")
    mtz.add_column("FP", "F")
    mtz.add_column("I", "J")
    mtz.add_column("FREE", "I")
    rows = [[h, k, l, _amplitude(h, k, l), (intensities or {}).get((h, k, l), _amplitude(h, k, l) ** 2), 0]
            for h, k, l in _asu_reflections(spacegroup)]
    rows[0][3] = float("nan")  # a missing amplitude
    for number in range(1, batches + 1):
        batch = gemmi.Mtz.Batch()
        batch.number = number
        mtz.batches.append(batch)
    mtz.set_data(np.array(rows, dtype=np.float32))
    mtz.write_to_file(str(path))
    return rows


def test_amplitudes_are_expanded_to_p1_with_friedel_mates(tmp_path):
    rows = write_mtz(tmp_path / "a.mtz")
    config = config_from_argv(FLAGS, structure=StructureInputs(mtz=str(tmp_path / "a.mtz"), mtz_column="FP"))
    sf = config.crystal.structure_factors
    assert sf.origin == "mtz"

    def F(h, k, l):
        return sf.grid[h - sf.h_min, k - sf.k_min, l - sf.l_min]

    # P 1 21 1 in reciprocal space: (h, k, l) ~ (-h, k, -l), and Friedel mates (-h, -k, -l) ~ (h, -k, l)
    missing = tuple(int(x) for x in rows[0][:3])
    for h, k, l, amplitude, *_ in rows[1:]:
        for equivalent in ((h, k, l), (-h, k, -l), (-h, -k, -l), (h, -k, l)):
            assert F(*equivalent) == pytest.approx(np.float32(amplitude), rel=1e-7), equivalent
    mates = {missing, (-missing[0], missing[1], -missing[2]), tuple(-x for x in missing),
             (missing[0], -missing[1], missing[2])}
    for index in mates:
        assert F(*index) == 0.0  # no value: -default_F (0 here)
    expected = {m for h, k, l, *_ in rows[1:] for m in ((h, k, l), (-h, k, -l), (-h, -k, -l), (h, -k, l))}
    assert sf.count == len(expected)


def test_the_cell_comes_from_the_file_unless_given(tmp_path):
    write_mtz(tmp_path / "a.mtz")
    source = StructureInputs(mtz=str(tmp_path / "a.mtz"), mtz_column="FP")
    config = config_from_argv(FLAGS, structure=source)
    assert config.crystal.cell == pytest.approx((*CELL[:3], *(math.radians(x) for x in CELL[3:])))
    given = config_from_argv(["-cell", "41", "51", "61", "90", "90", "90", *FLAGS], structure=source)
    assert given.crystal.cell[:3] == (41.0, 51.0, 61.0)


def test_intensities_take_square_roots_and_negatives_become_zero(tmp_path):
    asu = _asu_reflections("P 1 21 1")
    rows = write_mtz(tmp_path / "i.mtz", intensities={asu[1]: -5.0, asu[2]: 49.0})
    config = config_from_argv(FLAGS, structure=StructureInputs(mtz=str(tmp_path / "i.mtz"), mtz_column="I"))
    sf = config.crystal.structure_factors
    (h1, k1, l1), (h2, k2, l2) = asu[1], asu[2]
    assert sf.grid[h1 - sf.h_min, k1 - sf.k_min, l1 - sf.l_min] == 0.0
    assert sf.grid[h2 - sf.h_min, k2 - sf.k_min, l2 - sf.l_min] == 7.0
    assert sf.grid[-h2 - sf.h_min, -k2 - sf.k_min, -l2 - sf.l_min] == 7.0
    assert any("1 of" in w and "negative" in w for w in config.warnings)
    assert len(rows) == len(asu)


def test_write_hkl_gives_the_same_image_through_minus_hkl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_mtz(tmp_path / "a.mtz")
    assert_same_image_through_hkl(tmp_path, ["--mtz", "a.mtz", "--mtz-column", "FP", "--provenance", "run.json"],
                                  FLAGS, CELL)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["structure_factors"]["origin"] == "mtz" and record["structure_factors"]["mtz_column"] == "FP"
    assert record["inputs"]["a.mtz"] is not None


@pytest.mark.parametrize("structure, flags, error, text", [
    (dict(mtz_column="X"), [], InputError, r"--mtz-column X: no such column \(amplitude or intensity columns in "
                                           r".*: FP, I\)"),
    (dict(mtz_column="FREE"), [], InputError, "--mtz-column FREE: a column of type I, not F"),
    (dict(mtz_column=None), [], InputError, "give --mtz-column LABEL"),
    (dict(mtz_column="FP"), ["-hkl", "x.hkl"], UsageError, "-hkl and --mtz both give structure factors"),
])
def test_bad_mtz_input_is_one_error_naming_the_option(tmp_path, structure, flags, error, text):
    write_mtz(tmp_path / "a.mtz")
    with pytest.raises(error, match=text):
        config_from_argv([*FLAGS, *flags], structure=StructureInputs(mtz=str(tmp_path / "a.mtz"), **structure))


def test_unreadable_or_unmerged_files_and_a_column_without_a_file(tmp_path):
    (tmp_path / "junk.mtz").write_bytes(b"not an mtz file")
    with pytest.raises(InputError, match="--mtz: cannot read"):
        config_from_argv(FLAGS, structure=StructureInputs(mtz=str(tmp_path / "junk.mtz"), mtz_column="FP"))
    write_mtz(tmp_path / "u.mtz", batches=2)
    with pytest.raises(InputError, match="unmerged data"):
        config_from_argv(FLAGS, structure=StructureInputs(mtz=str(tmp_path / "u.mtz"), mtz_column="FP"))
    with pytest.raises(UsageError, match="--mtz-column names a column"):
        config_from_argv(FLAGS, structure=StructureInputs(mtz_column="FP"))


def test_write_hkl_without_structure_factors_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "-cell", "50", "-default_F", "10", "--write-hkl", "x.hkl", *FLAGS])
    assert result.exit_code != 0 and "--write-hkl: there are no structure factors" in result.stderr
    assert not (tmp_path / "x.hkl").exists() and not (tmp_path / "floatimage.bin").exists()


@pytest.mark.parametrize("friedel", [True, False])
@pytest.mark.parametrize("spacegroup", ["P 61 2 2", "C 1 2 1", "I 41/a", "R 3 :H"])
def test_expansion_covers_every_equivalent_index(spacegroup, friedel):
    """The expansion's index algebra against gemmi's per-reflection one (hexagonal, centred,
    centrosymmetric and rhombohedral groups); without Friedel mates (anomalous data) the
    reflections are given with their negated indices (a centric -h is also a mate of h: either
    source may fill it)."""
    from nbsim.io.mtz import expanded_to_p1

    sg = gemmi.SpaceGroup(spacegroup)
    asu = np.array(_asu_reflections(spacegroup), dtype=np.int64)
    if not friedel:
        asu = np.concatenate((asu, -asu))
    records = expanded_to_p1(asu, np.arange(len(asu), dtype=np.float64), sg, friedel=friedel)
    sources = {}
    for i, hkl in enumerate(asu.tolist()):
        for op in sg.operations():
            mate = tuple(op.apply_to_hkl(hkl))
            sources.setdefault(mate, set()).add(i)
            if friedel:
                sources.setdefault(tuple(-x for x in mate), set()).add(i)
    got = {tuple(int(x) for x in r[:3]): int(r[3]) for r in records}
    assert got.keys() == sources.keys() and len(records) == len(got)
    assert all(got[hkl] in sources[hkl] for hkl in got)
    if friedel:  # the asymmetric unit holds one reflection of each orbit
        assert all(len(s) == 1 for s in sources.values())
