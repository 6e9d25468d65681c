"""--cbf: a miniCBF that fabio (the reader of DIALS' and XDS' users) reads back with the
geometry and counts nbsim rendered."""

from __future__ import annotations

import re

import fabio
import numpy as np
import pytest
from click.testing import CliRunner

from nbsim import config_from_argv
from nbsim.io import smv
from nbsim_cli.app import cli

FLAGS = ["-cell", "60", "70", "80", "90", "90", "90", "-default_F", "100", "-lambda", "1.3", "-N", "5",
         "-distance", "90", "-detpixels_f", "40", "-detpixels_s", "32", "-pixel", "0.172", "-Xbeam", "2.9",
         "-Ybeam", "3.3", "-phi", "10", "-osc", "0.25", "-seed", "3", "-noprogress", "-nopgm"]


def run(*args):
    result = CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)
    return result


def header_value(text: str, key: str) -> str:
    match = re.search(rf"^# {key} (.*?)\s*$", text, re.M)
    assert match, key
    return match.group(1)


@pytest.mark.parametrize("noise", [False, True])
def test_the_cbf_holds_the_int_or_noise_image_and_the_geometry(tmp_path, monkeypatch, noise):
    monkeypatch.chdir(tmp_path)
    result = run(*FLAGS, "--cbf", "image.cbf", *(["--cbf-noise"] if noise else []))
    assert result.exit_code == 0, result.stderr
    image = fabio.open(str(tmp_path / "image.cbf"))
    smv_file = "noiseimage.img" if noise else "intimage.img"
    expected = smv.read(str(tmp_path / smv_file), flag="-img", with_pixels=True).pixels
    assert image.data.shape == (32, 40)
    np.testing.assert_array_equal(image.data, expected.astype(np.int32))
    assert image.data.max() > 0
    text = image.header["_array_data.header_contents"]
    config = config_from_argv(FLAGS)
    d = config.detector
    assert header_value(text, "Pixel_size") == "0.000172 m x 0.000172 m"
    assert float(header_value(text, "Wavelength").split()[0]) == pytest.approx(1.3)
    assert float(header_value(text, "Detector_distance").split()[0]) == pytest.approx(0.090)
    x, y = (float(v) for v in re.findall(r"[-\d.]+", header_value(text, "Beam_xy"))[:2])
    # MOSFLM: the beam centre (Xbeam along slow, Ybeam along fast) plus half a pixel, in pixels
    assert (x, y) == pytest.approx(((d.Ybeam + 0.5 * d.pixel_size) / d.pixel_size,
                                    (d.Xbeam + 0.5 * d.pixel_size) / d.pixel_size), abs=0.006)
    assert float(header_value(text, "Start_angle").split()[0]) == pytest.approx(10.0)
    assert float(header_value(text, "Angle_increment").split()[0]) == pytest.approx(0.25)


def test_cbf_errors_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*FLAGS, "-nonoise", "--cbf", "image.cbf", "--cbf-noise")
    assert result.exit_code != 0 and "--cbf-noise: the noise image is not made" in result.stderr
    result = run(*FLAGS, "--cbf-noise")
    assert result.exit_code != 0 and "--cbf-noise chooses what --cbf holds" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_tilted_detector_is_said_on_stderr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*FLAGS, "-nonoise", "-twotheta", "10", "--cbf", "image.cbf")
    assert result.exit_code == 0
    assert "--cbf: the miniCBF header describes a detector normal to the beam" in result.stderr
