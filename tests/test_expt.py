"""--export-expt: the simulated experiment as a DIALS experiment list, checked by computing in
the DIALS frame (from the JSON alone) what nbsim computes in its own frame."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from nbsim import build_model, config_from_argv
from nbsim_cli.app import cli

BASE = ["-cell", "61", "72", "83", "88", "97", "101", "-misset", "10", "-20", "30", "-default_F", "10", "-N", "3",
        "-lambda", "1.2", "-distance", "110", "-detpixels_f", "40", "-detpixels_s", "30", "-pixel", "0.17",
        "-oversample", "1", "-nonoise", "-nopgm", "-noprogress"]
GEOMETRIES = {
    "mosflm": ["-Xbeam", "3.1", "-Ybeam", "2.7"],
    "xds": ["-xds", "-ORGX", "17.5", "-ORGY", "11.2"],
    "adxv": ["-adxv"],
    "denzo": ["-denzo", "-Xbeam", "2.2", "-Ybeam", "3.0"],
    "dials": ["-dials", "-ORGX", "25", "-ORGY", "14"],
    "rotated": ["-detector_rotx", "3", "-detector_roty", "-4", "-detector_rotz", "5", "-twotheta", "12"],
    "custom": ["-fdet_vector", "0", "0", "1", "-sdet_vector", "0", "-1", "0.1", "-beam_vector", "1", "0.02", "0",
               "-spindle_axis", "0.1", "0", "1", "-polar_vector", "0", "0.2", "1"],
}


def rotated(v, axis, angle):
    v, k = np.asarray(v, float), np.asarray(axis, float) / np.linalg.norm(axis)
    return v * math.cos(angle) + np.cross(k, v) * math.sin(angle) + k * np.dot(k, v) * (1 - math.cos(angle))


def dials_miller_index(expt, fast, slow):
    """h of pixel (fast, slow)'s centre at the scan's start angle, from the experiment list alone."""
    panel = expt["detector"][0]["panels"][0]
    px = panel["pixel_size"][0]
    position = (np.array(panel["origin"]) + (fast + 0.5) * px * np.array(panel["fast_axis"])
                + (slow + 0.5) * px * np.array(panel["slow_axis"]))
    beam = expt["beam"][0]
    wavelength = beam["wavelength"]
    s0 = -np.array(beam["direction"]) / wavelength
    s1 = position / np.linalg.norm(position) / wavelength
    crystal = expt["crystal"][0]
    real = [np.array(crystal[f"real_space_{x}"]) for x in "abc"]
    if expt["goniometer"]:
        axis = expt["goniometer"][0]["rotation_axis"]
        angle = math.radians(expt["scan"][0]["properties"]["oscillation"][0])
        real = [rotated(v, axis, angle) for v in real]
    return np.array([np.dot(v, s1 - s0) for v in real])


def nbsim_miller_index(config, fast, slow):
    """The same pixel's h in nbsim's frame, from its placed detector and lattice."""
    m = build_model(config)
    g = m.geometry
    px = config.detector.pixel_size
    position = (g.pix0 + (fast + 0.5) * px * g.fdet + (slow + 0.5) * px * g.sdet).numpy()
    S = (position / np.linalg.norm(position) - np.array(config.beam.direction)) / (config.beam.wavelength * 1e10)
    real = [rotated(v, config.sampling.spindle_axis, config.sampling.phi0) for v in m.lattice.real.numpy()]
    return np.array([np.dot(v, S) for v in real])


def export(tmp_path, argv):
    result = CliRunner().invoke(cli, ["run", *argv, "--export-expt", "run.expt"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads((tmp_path / "run.expt").read_text())


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("scan", [["-phi", "20", "-osc", "1"], ["-phi", "20", "-osc", "0", "-phisteps", "1"]])
def test_the_exported_experiment_indexes_every_pixel_as_nbsim_does(tmp_path, monkeypatch, geometry, scan):
    monkeypatch.chdir(tmp_path)
    argv = [*BASE, *GEOMETRIES[geometry], *scan]
    expt = export(tmp_path, argv)
    config = config_from_argv(argv)
    assert bool(expt["goniometer"]) == (config.sampling.osc != 0.0)
    for fast, slow in ((0, 0), (39, 0), (7, 29), (20, 15)):
        np.testing.assert_allclose(dials_miller_index(expt, fast, slow), nbsim_miller_index(config, fast, slow),
                                   rtol=0, atol=1e-9)


def test_the_experiment_list_describes_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [*BASE, "-phi", "5", "-osc", "0.5", "-polar", "0.9", "-detector_thick", "450", "-detector_abs", "300",
            "-exposure", "2"]
    expt = export(tmp_path, argv)
    config = config_from_argv(argv)
    assert expt["__id__"] == "ExperimentList" and expt["experiment"][0]["scan"] == 0
    beam, panel = expt["beam"][0], expt["detector"][0]["panels"][0]
    assert beam["wavelength"] == pytest.approx(1.2) and beam["direction"] == pytest.approx([0, 0, 1])
    assert beam["polarization_fraction"] == pytest.approx(0.95)
    assert expt["goniometer"][0]["rotation_axis"] == pytest.approx([1, 0, 0])  # MOSFLM's spindle is DIALS' X
    assert panel["image_size"] == [40, 30] and panel["pixel_size"] == pytest.approx([0.17, 0.17])
    assert panel["thickness"] == pytest.approx(0.45) and panel["mu"] == pytest.approx(1 / 0.3)
    normal = np.cross(panel["fast_axis"], panel["slow_axis"])
    assert abs(np.dot(panel["origin"], normal)) == pytest.approx(1000 * build_model(config).geometry.close_distance)
    scan = expt["scan"][0]
    assert scan["image_range"] == [1, 1]
    assert scan["properties"]["oscillation"] == pytest.approx([5.0]) and scan["properties"]["oscillation_width"] == [0.5]
    assert all(isinstance(x, float) for x in scan["properties"]["oscillation"])
    assert scan["properties"]["exposure_time"] == [2.0]
    lengths = [np.linalg.norm(expt["crystal"][0][f"real_space_{x}"]) for x in "abc"]
    assert lengths == pytest.approx([61, 72, 83])
    assert expt["imageset"][0]["images"] == ["intimage.img"]
