"""--detector FILE: detectors from DIALS experiment lists, CrystFEL geometry files and nbsim
panel lists, checked against the command line's detector they describe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import golden as G
from nbsim import config_from_argv
from nbsim.model.panels import split_detector
from nbsim.setup import flags as F
from nbsim.simulation import Simulation
from nbsim_cli.app import cli

ARITY = {F.NONE: 0, F.NUMBER: 1, F.INTEGER: 1, F.TEXT: 1, F.PIVOT: 1, F.ABSORPTION: 1, F.VECTOR: 3}
BY_NAME = {name: flag for flag in F.FLAGS for name in flag.names}
BASE = ["-cell", "61", "72", "83", "88", "97", "101", "-misset", "10", "-20", "30", "-default_F", "10", "-N", "3",
        "-lambda", "1.2", "-oversample", "1", "-nopgm", "-noprogress", "-phi", "20", "-osc", "1"]
DETECTOR = ["-distance", "110", "-detpixels_f", "40", "-detpixels_s", "30", "-pixel", "0.17", "-Xbeam", "3.1",
            "-Ybeam", "2.7"]


def without_placement(argv):
    """``argv`` without the flags (and their values) a detector file stands for."""
    out, i = [], 0
    while i < len(argv):
        flag = BY_NAME.get(argv[i])
        if flag is not None and flag.name in F.PLACEMENT_FLAGS:
            i += 1 + ARITY[flag.shape]
        else:
            out.append(argv[i])
            i += 1
    return out


def run(tmp_path, argv):
    result = CliRunner().invoke(cli, ["run", *argv], catch_exceptions=False)
    return result


def image(path, shape):
    return np.fromfile(path, dtype=np.float32).reshape(shape)


ROUND_TRIP_CASES = [n for n in G.case_names() if G.load_case(n)["group"] in ("core", "geometry")
                    and n != "curved_det"]  # a curved detector is no flat panel: its export says so


@pytest.mark.golden
@pytest.mark.parametrize("name", ROUND_TRIP_CASES)
def test_the_exported_detector_read_back_reproduces_the_golden_case(name, tmp_path, monkeypatch):
    """--export-expt, then the same command line with --detector instead of its detector flags:
    the golden image, within the golden tolerance."""
    G.prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    exported = CliRunner().invoke(cli, [*G.case_argv(name), "--export-expt", "case.expt"], catch_exceptions=False)
    assert exported.exit_code == 0, exported.stderr
    argv = without_placement(G.case_argv(name)) + ["--detector", "case.expt"]
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    import subprocess

    comparison = G.compare(name, tmp_path, subprocess.CompletedProcess(argv, 0, result.stdout, result.stderr),
                           policy="spec", dtype="float64")
    assert comparison.pixels_off == 0, comparison


def crystfel_halves(config) -> str:
    """A CrystFEL geometry of ``config``'s (MOSFLM, unrotated) detector as two panels, its top
    and bottom halves: nanoBragg's fast (0, 0, 1) is CrystFEL's -x, slow (0, -1, 0) its -y, and
    pix0 = (distance, Sbeam, -Fbeam) its corner (Fbeam, Sbeam, distance)."""
    d = config.detector
    half = d.spixels // 2
    lines = [f"res = {1.0 / d.pixel_size!r}", f"clen = {d.distance!r}", "coffset = 0.0", "photon_energy = 10332",
             "adu_per_eV = 0.001", "data = /entry/data/data", "dim0 = %", "dim1 = ss", "dim2 = fs", ""]
    for k in range(2):
        corner_y = d.Sbeam / d.pixel_size - k * half  # slow runs along -y
        lines += [f"q{k}/min_fs = 0", f"q{k}/max_fs = {d.fpixels - 1}", f"q{k}/min_ss = {k * half}",
                  f"q{k}/max_ss = {(k + 1) * half - 1}", f"q{k}/fs = -1.0x +0.0y", f"q{k}/ss = +0.0x -1.0y",
                  f"q{k}/corner_x = {d.Fbeam / d.pixel_size!r}", f"q{k}/corner_y = {corner_y!r}", ""]
    lines += ["rigid_group_q = q0,q1", "bad_edge/min_fs = 0", "bad_edge/max_fs = 1"]
    return "\n".join(lines) + "\n"


def test_a_crystfel_geometry_of_two_halves_gives_the_command_lines_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_from_argv(BASE + DETECTOR)
    (tmp_path / "halves.geom").write_text(crystfel_halves(config))
    assert run(tmp_path, [*BASE, *DETECTOR, "-floatfile", "one.bin"]).exit_code == 0
    result = run(tmp_path, [*BASE, "-floatfile", "two.bin", "--detector", "halves.geom", "--export-expt", "two.expt"])
    assert result.exit_code == 0, result.stderr
    assert "2 panels are stacked along the slow axis" in result.stderr
    one, two = image("one.bin", (30, 40)), image("two.bin", (30, 40))
    assert np.allclose(two, one, rtol=1e-6, atol=1e-7 * one.max())
    panels = json.loads((tmp_path / "two.expt").read_text())["detector"][0]["panels"]
    assert [p["name"] for p in panels] == ["q0", "q1"] and panels[1]["image_size"] == [40, 15]
    # photon_energy gives the wavelength when the command line gives none
    without_lambda = [t for i, t in enumerate(BASE) if t != "-lambda" and BASE[i - 1] != "-lambda"]
    derived = config_from_argv(without_lambda, detector=str(tmp_path / "halves.geom"))
    assert derived.beam.wavelength == pytest.approx(12398.42 / 10332 * 1e-10, rel=1e-12)


def nbsim_panel_list(config, fast_tiles, slow_tiles) -> dict:
    split = split_detector(config, fast_tiles, slow_tiles).detector
    return {"nbsim_panels": 1, "beam": list(config.beam.direction),
            "panels": [{"name": p.name, "origin_mm": [1000 * x for x in p.origin], "fast": list(p.fast),
                        "slow": list(p.slow), "pixel_mm": 1000 * p.pixel_size, "size": [p.fpixels, p.spixels],
                        "thickness_um": 1e6 * p.thickness, "attenuation_depth_um": 1e6 / p.mu}
                       for p in split.panels]}


def test_an_nbsim_panel_list_of_four_tiles_gives_the_split_detectors_pixels(tmp_path, monkeypatch):
    """Four tiles of a rotated detector with a thick sensor, read from a panel list: the pixels of
    the split detector rendered from Python, and of the one panel they tile."""
    monkeypatch.chdir(tmp_path)
    rotated = [*DETECTOR, "-detector_rotx", "3", "-detector_roty", "-4", "-twotheta", "8", "-detector_thick", "300",
               "-detector_abs", "200", "-detector_thicksteps", "3"]
    config = config_from_argv(BASE + rotated)
    (tmp_path / "tiles.json").write_text(json.dumps(nbsim_panel_list(config, 2, 2)))
    result = run(tmp_path, [*BASE, "-detector_thicksteps", "3", "-floatfile", "four.bin", "--detector", "tiles.json"])
    assert result.exit_code == 0, result.stderr
    four = image("four.bin", (4, 15, 20))
    whole = Simulation(config).image().detach().numpy()
    tiled = np.block([[four[0], four[1]], [four[2], four[3]]])
    assert np.allclose(tiled, whole, rtol=1e-6, atol=1e-7 * whole.max())  # the file holds float32
    with_sensor_flag = run(tmp_path, [*BASE, "-detector_thick", "300", "--detector", "tiles.json"])
    assert with_sensor_flag.exit_code == 2
    assert "remove -detector_thick" in with_sensor_flag.stderr


def expt_with_hierarchy(tmp_path) -> tuple[str, str]:
    """The same two panels as a flat DIALS detector and as a group turned and moved as a whole."""
    def panel(name, origin, fast, slow):
        return {"name": name, "type": "SENSOR_PAD", "fast_axis": fast, "slow_axis": slow, "origin": origin,
                "image_size": [20, 10], "pixel_size": [0.2, 0.2], "thickness": 0.0, "mu": 0.0}

    c, s = np.cos(0.3), np.sin(0.3)
    turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])  # the group's frame: fast, slow, normal as columns
    shift = np.array([-2.0, -1.0, -100.0])
    local = [panel("a", [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
             panel("b", [0.0, 2.5, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])]
    flat = [panel(p["name"], (shift + turn @ p["origin"]).tolist(), (turn @ p["fast_axis"]).tolist(),
                  (turn @ p["slow_axis"]).tolist()) for p in local]
    group = {"name": "group", "fast_axis": turn[:, 0].tolist(), "slow_axis": turn[:, 1].tolist(),
             "origin": shift.tolist(), "children": [{"panel": 1}, {"panel": 0}]}
    root = {"name": "", "children": [group]}
    paths = []
    for name, detector in (("flat", {"panels": flat}), ("grouped", {"panels": local, "hierarchy": root})):
        doc = {"__id__": "ExperimentList", "experiment": [], "detector": [detector],
               "beam": [{"direction": [0.0, 0.0, 1.0], "wavelength": 1.1}]}
        (tmp_path / f"{name}.expt").write_text(json.dumps(doc))
        paths.append(str(tmp_path / f"{name}.expt"))
    return paths[0], paths[1]


def test_a_dials_hierarchy_places_its_panels_as_the_flat_detector_it_equals(tmp_path):
    flat, grouped = expt_with_hierarchy(tmp_path)
    argv = ["-cell", "50", "60", "70", "90", "90", "90", "-default_F", "1"]
    a, b = (config_from_argv(argv, detector=path) for path in (flat, grouped))
    assert b.beam.wavelength == pytest.approx(1.1e-10)
    for p, q in zip(a.detector.panels, b.detector.panels):
        for field in ("origin", "fast", "slow", "normal"):
            assert np.allclose(getattr(p, field), getattr(q, field), rtol=0, atol=1e-12), field


def error_of(tmp_path, argv) -> str:
    result = CliRunner().invoke(cli, ["run", *argv], catch_exceptions=False)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbsim: error: "), result.stderr
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".bin", ".img", ".pgm")]
    return lines[0]


GEOM_PANEL = ["p/min_fs = 0", "p/max_fs = 9", "p/min_ss = 0", "p/max_ss = 9", "p/fs = +1x", "p/ss = +1y",
              "p/corner_x = -5", "p/corner_y = -5", "p/res = 10000", "p/clen = 0.1"]


@pytest.mark.parametrize("lines, message", [
    (GEOM_PANEL[:-1], "panel 'p' has no clen"),
    ([*GEOM_PANEL, "p/clen = /LCLS/detector/z"], "line 11: p/clen = '/LCLS/detector/z' is not a number"),
    ([*GEOM_PANEL, "p/max_fs = -1"], "line 11: panel 'p' has no pixels"),
    ([*GEOM_PANEL, "p/fs = +1x +2q"], "line 11: p/fs = '+1x +2q' is not a vector"),
    ([*GEOM_PANEL, "p/fs = +2x"], "fs/ss vectors of length 2/1"),
    ([*GEOM_PANEL, "nonsense"], "line 11: expected 'key = value'"),
    ([*GEOM_PANEL, *(line.replace("p/", "q/") for line in GEOM_PANEL)], "'p' and 'q' overlap"),
    ([*GEOM_PANEL, *(line.replace("p/", "q/") for line in GEOM_PANEL[:-3]), "q/corner_x = 5", "q/corner_y = -5",
      "q/res = 10000", "q/clen = 0.1", "q/max_ss = 4"], "'q' has 10x5 pixels and 'p' 10x10"),
])
def test_a_bad_crystfel_geometry_is_a_one_line_error_naming_file_and_line(tmp_path, monkeypatch, lines, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.geom").write_text("\n".join(lines) + "\n")
    assert message in error_of(tmp_path, [*BASE, "--detector", "bad.geom"])


def test_bad_detector_files_and_conflicting_flags_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.geom").write_text("\n".join(GEOM_PANEL) + "\n")
    assert "remove -distance, -pixel" in error_of(tmp_path, [*BASE, "-distance", "90", "-pixel", "0.1",
                                                             "--detector", "good.geom"])
    assert "degrees apart" in error_of(tmp_path, [*BASE, "-xds", "--detector", "good.geom"])
    assert "cannot read missing.expt" in error_of(tmp_path, [*BASE, "--detector", "missing.expt"])
    (tmp_path / "broken.expt").write_text('{"__id__": "ExperimentList",\n "detector": [}')
    assert "broken.expt line 2: not valid JSON" in error_of(tmp_path, [*BASE, "--detector", "broken.expt"])
    zero = {"__id__": "ExperimentList", "detector": [{"panels": [
        {"name": "z", "fast_axis": [1, 0, 0], "slow_axis": [0, 1, 0], "origin": [0, 0, -100],
         "image_size": [0, 10], "pixel_size": [0.1, 0.1]}]}]}
    (tmp_path / "zero.expt").write_text(json.dumps(zero))
    assert "zero.expt: panel 'z': fpixels must be at least 1" in error_of(tmp_path, [*BASE, "--detector", "zero.expt"])
    (tmp_path / "other.json").write_text('{"panels": []}')
    assert "neither a DIALS experiment list" in error_of(tmp_path, [*BASE, "--detector", "other.json"])
