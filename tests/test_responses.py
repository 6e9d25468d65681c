"""Detector responses: the contract suite for every built-in, the PSFs against their analytic
pixel integrals, gain and calibration, the reference's noise image as a chain, and the
command line (--response, --response-float)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import golden as G
from nbsim.physics.counter_random import CounterRandom
from nbsim.plugins.builtins.responses import Calibration, FiberPSF, Gain, GaussianPSF
from nbsim.protocols import ResponseContext
from nbsim.testing import BaseDetectorResponseTests
from nbsim_cli.app import cli

CONFIGURED = {"psf-gauss": {"fwhm": "500"}, "psf-fiber": {"fwhm": "300", "radius": "6"},
              "gain": {"adu_per_photon": "2.5"}, "pedestal": {"adu": "7"}, "calibration": {"percent": "3"},
              "flicker": {"percent": "2"}, "poisson": {"rng": "parallel"}, "saturation": {"max": "50"}}


@pytest.fixture(params=sorted(CONFIGURED))
def configured(request, in_test_plugins):
    return in_test_plugins.detector_responses.get(request.param).configure(CONFIGURED[request.param])


class TestBuiltinResponses(BaseDetectorResponseTests):
    @pytest.fixture
    def implementation(self, configured):
        return configured


def context(pixel=1e-4, seed=0):
    return ResponseContext(pixel_size=torch.tensor([pixel], dtype=torch.float64),
                           random=CounterRandom(seed), config=None, notes=[])


def one_bright_pixel(size=41, value=1000.0):
    image = torch.zeros((1, size, size), dtype=torch.float64)
    image[0, size // 2, size // 2] = value
    return image


def gaussian_pixel_integrals(sigma, pixel, radius):
    """The pixel-integrated Gaussian around a centre pixel, normalised over the window: written
    here with math.erf, independently of the response."""
    def cdf(x):
        return 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))

    one = np.array([cdf((i + 0.5) * pixel) - cdf((i - 0.5) * pixel) for i in range(-radius, radius + 1)])
    kernel = np.outer(one, one)
    return kernel / kernel.sum()


def test_the_gaussian_psf_of_a_bright_pixel_is_the_pixel_integrated_gaussian():
    fwhm_um, pixel = 250.0, 1e-4
    out = GaussianPSF().configure({"fwhm": str(fwhm_um), "radius": "8"}).apply(one_bright_pixel(), context(pixel))
    sigma = fwhm_um * 1e-6 / (2 * math.sqrt(2 * math.log(2)))
    expected = 1000.0 * gaussian_pixel_integrals(sigma, pixel, 8)
    assert np.allclose(out[0, 20 - 8:20 + 9, 20 - 8:20 + 9].numpy(), expected, rtol=1e-9, atol=1e-12)
    assert float(out.sum()) == pytest.approx(1000.0, rel=1e-12)
    assert float(out[0, :12].abs().max()) < 1e-9  # nothing beyond the radius
    # the default radius holds all but a negligible part of the light
    wide = GaussianPSF().configure({"fwhm": str(fwhm_um)}).apply(one_bright_pixel(), context(pixel))
    assert float(wide[0, 20, 20]) == pytest.approx(expected[8, 8], rel=1e-3)


def test_the_fiber_psf_has_its_fwhm_and_the_analytic_pixel_integrals():
    fwhm_um, pixel = 300.0, 1e-4
    response = FiberPSF().configure({"fwhm": str(fwhm_um), "radius": "15"})
    out = response.apply(one_bright_pixel(61), context(pixel))[0].numpy()
    g = fwhm_um * 1e-6 / (2 * math.sqrt(2 ** (2 / 3) - 1))

    def F(x, y):  # the integral of g / (2 pi (g^2 + r^2)^1.5) over (0, x) x (0, y)
        return math.atan(x * y / (g * math.sqrt(g * g + x * x + y * y))) / (2 * math.pi)

    def pixel_integral(i, j):
        x0, x1, y0, y1 = (i - 0.5) * pixel, (i + 0.5) * pixel, (j - 0.5) * pixel, (j + 0.5) * pixel
        return F(x1, y1) - F(x0, y1) - F(x1, y0) + F(x0, y0)

    window = np.array([[pixel_integral(i, j) for j in range(-15, 16)] for i in range(-15, 16)])
    assert np.allclose(out[30 - 15:30 + 16, 30 - 15:30 + 16], 1000.0 * window / window.sum(), rtol=1e-9)
    assert out.sum() == pytest.approx(1000.0, rel=1e-12)
    # the profile (g^2 + r^2)^-1.5 halves at r = FWHM / 2: a fine-pixel check of the FWHM
    r = fwhm_um * 1e-6 / 2
    assert (g * g / (g * g + r * r)) ** 1.5 == pytest.approx(0.5, rel=1e-12)


def test_gain_multiplies_and_calibration_is_a_fixed_per_pixel_error_of_that_size():
    image = torch.full((2, 200, 200), 50.0, dtype=torch.float64)
    assert torch.equal(Gain().configure({"adu_per_photon": "3"}).apply(image, context()), image * 3)
    calibration = Calibration().configure({"percent": "4"})
    a = calibration.apply(image, context(seed=1))
    b = calibration.apply(image, context(seed=2))  # the chain's generator does not touch it
    assert torch.equal(a, b)
    factor = a / image
    assert float(factor.mean()) == pytest.approx(1.0, abs=0.002)
    assert float(factor.std()) == pytest.approx(0.04, rel=0.02)
    other = Calibration().configure({"percent": "4", "seed": "9"}).apply(image, context())
    assert not torch.equal(a, other)


def run(tmp_path, *argv):
    result = CliRunner().invoke(cli, ["run", *argv], catch_exceptions=False)
    return result


def test_poisson_pedestal_and_saturation_are_the_reference_noise_image(tmp_path, monkeypatch):
    """The golden case with noise: the chain's noise file is the C program's, byte for byte."""
    G.prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = G.load_case("noise_seeded")["argv"]
    result = run(tmp_path, *argv, "-noisefile", "chain.img", "-intfile", "chain_int.img", "-nopgm",
                 "--response", "poisson", "--response", "pedestal:adu=40", "--response", "saturation:max=65535",
                 "--response-float", "chain.float")
    assert result.exit_code == 0, result.stderr
    _, golden_pixels = G._smv(G.GOLDEN / "cases" / "noise_seeded" / "noise.img")
    _, chain_pixels = G._smv(tmp_path / "chain.img")
    assert np.array_equal(chain_pixels, golden_pixels)  # every pixel of the C program's noise image
    plain = run(tmp_path, *argv, "-noisefile", "plain.img", "-nopgm")  # and nbsim's own noise file, header and all
    assert plain.exit_code == 0 and (tmp_path / "plain.img").read_bytes() == (tmp_path / "chain.img").read_bytes()
    recorded = np.fromfile(tmp_path / "chain.float", dtype=np.float32)
    pixels = np.fromfile(tmp_path / "chain.img", dtype=np.uint16)[-128 * 128:]
    assert np.array_equal(recorded.astype(np.uint16), pixels)
    # the int image carries the chain's result as well
    assert np.array_equal(np.fromfile(tmp_path / "chain_int.img", dtype=np.uint16)[-128 * 128:], pixels)
    assert "detector response: poisson -> pedestal:adu=40 -> saturation:max=65535" in result.stdout


BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2", "-N", "5",
        "-distance", "100", "-pixel", "0.1", "-detpixels", "96", "-seed", "7", "-nopgm", "-noprogress"]
CHAIN = ["--response", "psf-fiber:fwhm=150", "--response", "poisson:rng=parallel", "--response", "gain:adu_per_photon=2",
         "--response", "flicker:percent=1", "--response", "readout:sigma=2", "--response", "pedestal:adu=10",
         "--response", "saturation:max=60"]


def test_the_recorded_image_depends_on_the_seed_and_not_on_the_chunking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {}
    for name, extra in (("whole", []), ("chunked", ["--max-memory", "600M"]), ("again", []),
                        ("other", ["-seed", "8"])):
        result = run(tmp_path, *BASE, *extra, *CHAIN, "-noisefile", f"{name}.img", "--response-float", f"{name}.bin")
        assert result.exit_code == 0, result.stderr
        files[name] = (tmp_path / f"{name}.bin").read_bytes()
    assert files["whole"] == files["chunked"] == files["again"]
    assert files["other"] != files["whole"]
    recorded = np.frombuffer(files["whole"], dtype=np.float32)
    assert recorded.max() <= 60.0 and "saturation:" in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--response", "nonesuch"], "no detector response 'nonesuch'"),
    (["--response", "gain:adu_per_photon"], "expected key=value options"),
    (["--response", "psf-gauss:fwhm=-2"], "fwhm must be positive"),
    (["--response", "gain:adu_per_photon=two"], "is not a float"),
    (["--response-float", "x.bin"], "no --response is given"),
])
def test_bad_responses_are_one_line_usage_errors(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    result = run(tmp_path, *BASE, *argv)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_nbsim_plugins_lists_every_response():
    result = CliRunner().invoke(cli, ["plugins"], catch_exceptions=False)
    for name in [*CONFIGURED, "readout"]:
        assert f"detector response:{name}" in result.stdout, name
