"""--png: a picture of the float image (read back with Pillow)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nbsim.outputs import picture
from nbsim_cli.app import cli

FLAGS = ["-cell", "60", "70", "80", "90", "90", "90", "-default_F", "100", "-lambda", "1.3", "-N", "5",
         "-distance", "90", "-detpixels_f", "40", "-detpixels_s", "32", "-pixel", "0.172", "-noprogress",
         "-nonoise", "-nopgm"]


@pytest.mark.parametrize("scaling", ["log", "adxv"])
def test_the_picture_shows_the_image(tmp_path, monkeypatch, scaling):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", *FLAGS, "--png", "image.png", "--png-scaling", scaling],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    image = np.fromfile(tmp_path / "floatimage.bin", dtype=np.float32).reshape(32, 40)
    with Image.open(tmp_path / "image.png") as png:
        assert png.format == "PNG" and png.mode == "L" and png.size == (40, 32)
        levels = np.asarray(png)
    strongest = np.unravel_index(np.argmax(image), image.shape)
    if scaling == "log":
        assert levels[strongest] == 255 and levels[image == 0].max(initial=0) == 0
        order = np.argsort(image.ravel())
        assert np.all(np.diff(levels.ravel()[order].astype(int)) >= 0)  # brighter where the image is
    else:
        assert levels[strongest] < levels[np.unravel_index(np.argmin(image), image.shape)]


def test_panels_are_laid_out_with_gaps():
    levels = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4)
    out = picture.laid_out(levels)
    assert out.shape == (2 * 3 + picture.GAP, 3 * 4 + 2 * picture.GAP)  # 3 columns, 2 rows
    np.testing.assert_array_equal(out[:3, 4 + picture.GAP: 8 + picture.GAP], levels[1])
    np.testing.assert_array_equal(out[3 + picture.GAP:, 4 + picture.GAP: 8 + picture.GAP], levels[4])
    assert (out[3:3 + picture.GAP] == picture.GAP_GREY).all()
    png = Image.open(io.BytesIO(picture.png_bytes(np.ones((4, 3, 4)), "log", 1.0)))
    assert png.size == (2 * 4 + picture.GAP, 2 * 3 + picture.GAP)
