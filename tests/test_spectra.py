"""Beam spectra: ``--spectrum FILE`` and the SASE model of ``--sase``.

The image of a spectrum is the weighted sum of its single-wavelength images, each source
counting w_s / mean(w) times an equal-weight source: in both engines, with divergence, with
gradients; equal weights are the dispersion of the same wavelengths; a SASE still is the image
``nbsim run`` renders with its manifest flags, bit for bit.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nbsim import build_model, config_from_argv, select_physics
from nbsim.datasets import plan_from_argv
from nbsim.engines.pipeline import render
from nbsim.errors import InputError
from nbsim.io import spectrum as spectrum_file
from nbsim.model.spectra import FWHM_PER_SIGMA, SaseSpec, intensity_weights, sase_spectrum
from nbsim.runner import RunOptions
from nbsim.setup import SpectrumInputs
from nbsim.simulation import Simulation
from nbsim_cli.app import cli

BASE = "-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 4 -distance 60 -detpixels 8 -pixel 0.5".split()
ENGINES = ["tensor", "numba"]


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def image(argv, spectrum: str | None = None, engine: str = "tensor", dtype=torch.float64, **physics) -> torch.Tensor:
    config = config_from_argv(argv, spectrum=SpectrumInputs(file=spectrum))
    with torch.no_grad():
        result = render(build_model(config, dtype=dtype), select_physics(config, **physics), engine=engine)
    assert result.engine.name == engine
    return result.image


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("header, line, flags", [("wavelength_A weight", "1.2 3", ["-lambda", "1.2"]),
                                                 ("Energy_eV   Weight", "10332.0167 0.5", ["-energy", "10332.0167"])])
def test_a_one_line_spectrum_is_its_wavelength(tmp_path, engine, header, line, flags):
    path = write(tmp_path / "one.txt", f"# {header}\n{line}\n")
    assert torch.equal(image(BASE, path, engine), image(BASE + flags, engine=engine))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("extra", ["", "-divergence 1 -divsteps 3 -oversample 2 -oversample_omega"])
def test_equal_weights_are_the_dispersion_of_the_same_wavelengths(tmp_path, engine, extra):
    dispersion, steps = 0.1, 4
    wavelengths = [1.2 * (1 + dispersion / (steps - 1) * k - dispersion / 2) for k in range(steps)]
    path = write(tmp_path / "flat.txt", "# wavelength_A weight\n" + "".join(f"{w!r} 2.5\n" for w in wavelengths))
    argv = BASE + extra.split()
    assert build_model(config_from_argv(argv, spectrum=SpectrumInputs(file=path))).sources.intensity_weights is None
    dispersed = image(argv + ["-lambda", "1.2", "-dispersion", "10", "-dispsteps", str(steps)], engine=engine)
    assert relative_error(image(argv, path, engine), dispersed) <= 1e-12


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("extra", ["", "-divergence 1 -divsteps 3 -phi 0 -osc 2 -phisteps 2 -polar 0.7"])
def test_weights_give_the_weighted_sum_of_single_wavelength_images(tmp_path, engine, extra):
    """Weights 3 and 1: each source counts w/mean(w) = 1.5 and 0.5 of an equal-weight one, and
    the image of two equal-weight sources is half the sum of their images: 0.75 I(λ1) + 0.25 I(λ2).
    (Not with -water, whose background nanoBragg divides by the number of sources, nor with
    running products, which are not sums of the sources' terms.)"""
    path = write(tmp_path / "two.txt", "# wavelength_A weight\n1.2 3\n1.25 1\n")
    argv = BASE + extra.split()
    want = 0.75 * image(argv + ["-lambda", "1.2"], engine=engine) + 0.25 * image(argv + ["-lambda", "1.25"],
                                                                                   engine=engine)
    assert relative_error(image(argv, path, engine), want) <= 1e-12


LOOP_PATHS = ["", "-oversample 2 -oversample_omega -oversample_polar -mosaic 1 -mosaic_dom 3",
              "-detector_thick 200 -detector_abs 300 -thicksteps 2 -oversample_thick -round_xtal",
              "HKL -oversample 2 -oversample_omega", "-divergence 1 -divsteps 3"]


@pytest.mark.parametrize("extra, dtype", [(extra, dtype) for extra in LOOP_PATHS for dtype in (torch.float64,
                                                                                              torch.float32)]
                         + [("HKL -interpolate", torch.float64)])  # interpolation is double precision
@pytest.mark.parametrize("policy", ["spec", "c-parity"])
def test_both_engines_weigh_sources_alike(tmp_path, dtype, extra, policy):
    """Weights through every path of the CPU loop (summed, single precision near a reference,
    interpolated, running products, c-parity's first pass of a block) against the tensor kernel."""
    if extra.startswith("HKL"):
        hkl = write(tmp_path / "t.hkl", "".join(f"{h} {k} {l} {5 + abs(h) + 2 * abs(k) + 3 * abs(l)}\n"
                                                for h in range(-4, 5) for k in range(-4, 5) for l in range(-4, 5)))
        extra = extra.replace("HKL", f"-hkl {hkl} -default_F 0")
    path = write(tmp_path / "three.txt", "# energy_eV weight\n10000 1\n10100 0\n10200 4.5\n")
    argv = BASE + extra.split()
    options = {"phi_policy": policy, "options": {"threads": 3} if policy == "c-parity" else None}
    tensor = image(argv, path, "tensor", dtype, **options)
    tolerance = 1e-11 if dtype == torch.float64 else 1e-5
    assert relative_error(image(argv, path, "numba", dtype, **options), tensor) <= tolerance


def test_gradients_flow_through_a_weighted_spectrum(tmp_path):
    path = write(tmp_path / "two.txt", "# wavelength_A weight\n1.2 3\n1.25 1\n")
    config = config_from_argv(BASE + ["-divergence", "1", "-divsteps", "3"], spectrum=SpectrumInputs(file=path))
    sim = Simulation(config)
    assert sim.config.beam.wavelength == pytest.approx(1.2125e-10, rel=1e-15)  # the weighted mean
    plain = sim.image()
    params = sim.parameters("cell", "wavelength", "distance")
    weighted = sim.image(params)
    assert relative_error(weighted.detach(), plain) <= 1e-12  # the same image (auto may render it in another engine)
    weighted.sum().backward()
    for name, value in params.items():
        assert torch.isfinite(value.grad).all() and value.grad.abs().sum() > 0, name
    # the spectrum keeps its shape as the beam's wavelength varies: 1.01 x every line
    config = config_from_argv(BASE, spectrum=SpectrumInputs(file=path))
    shifted = build_model(config, params={"wavelength": torch.tensor(1.01 * config.beam.wavelength)})
    assert torch.allclose(shifted.sources.wavelengths, torch.tensor([1.2e-10, 1.25e-10], dtype=torch.float64) * 1.01,
                          rtol=1e-15)


def test_spectrum_files_skip_comments_and_blank_lines(tmp_path):
    path = write(tmp_path / "s.txt", "# a title\n\n  # Wavelength_A  weight \n1.0 2  # the peak\n\n# a note\n1.1\t0\n")
    table = spectrum_file.read(path)
    assert table.unit == "wavelength_A"
    assert table.values.tolist() == [1.0, 1.1] and table.weights.tolist() == [2.0, 0.0]
    assert intensity_weights(table.weights).tolist() == [2.0, 0.0]


BAD_FILES = {
    "no header": ("1.2 1\n", 1, "before the header"),
    "header after values": ("# wavelength_A weight\n1.2 1\n# energy_eV weight\n", 3, "a second header"),
    "header late": ("1.2 1\n# wavelength_A weight\n", 1, "before the header"),
    "one column": ("# energy_eV weight\n9000\n", 2, "expected two numbers"),
    "three columns": ("# energy_eV weight\n9000 1 2\n", 2, "got 3 columns"),
    "not a number": ("# energy_eV weight\n\n9000 one\n", 3, "expected two numbers"),
    "negative weight": ("# energy_eV weight\n9000 -1\n", 2, "non-negative"),
    "zero energy": ("# energy_eV weight\n0 1\n", 2, "must be positive"),
    "infinite wavelength": ("# wavelength_A weight\ninf 1\n", 2, "must be positive and finite"),
    "no values": ("# wavelength_A weight\n", None, "no value lines"),
    "no header at all": ("# just a comment\n", None, "no header"),
    "all weights zero": ("# wavelength_A weight\n1 0\n1.1 0\n", None, "every weight is 0"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_spectrum_file_is_one_line_naming_file_and_line(tmp_path, monkeypatch, name):
    text, line, message = BAD_FILES[name]
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bad.txt", text)
    with pytest.raises(InputError) as error:
        spectrum_file.read("bad.txt")
    where = "bad.txt" if line is None else f"bad.txt:{line}:"
    assert where in str(error.value) and message in str(error.value) and "\n" not in str(error.value)
    result = CliRunner().invoke(cli, ["run", *BASE, "--spectrum", "bad.txt", "-floatfile", "x.bin", "-noprogress"])
    assert result.exit_code == 1 and result.stderr.strip() == f"nbsim: error: {error.value}"
    assert os.listdir() == ["bad.txt"]


@pytest.mark.parametrize("flags, message", [
    (["--spectrum", "s.txt", "-lambda", "1"], "remove -lambda"),
    (["--spectrum", "s.txt", "-energy", "9000", "-dispersion", "1", "-dispsteps", "3"],
     "remove -energy, -dispersion, -dispsteps"),
    (["--spectrum", "s.txt", "-sourcefile", "s.txt"], "remove -sourcefile"),
    (["--sase", "9500:0.003:20", "-wavelength", "1"], "--sase gives the beam's wavelengths: remove -lambda"),
    (["--spectrum", "s.txt", "--sase", "9500:0.003:20"], "use one"),
    (["--spectrum", "s.txt", "--sase-seed", "3"], "--sase is not given"),
    (["--sase", "9500:0.003"], "expected MEAN_EV:BANDWIDTH:SPIKES[:BINS]"),
    (["--sase", "9500:2:20"], "bandwidth"),
    (["--sase", "9500:0.003:0"], "at least 1"),
])
def test_spectrum_usage_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s.txt", "# wavelength_A weight\n1 1\n")
    result = CliRunner().invoke(cli, ["run", *BASE, *flags, "-floatfile", "x.bin", "-noprogress"])
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert os.listdir() == ["s.txt"]


def test_a_sase_shot_is_reproducible_spiky_and_centred():
    shot = sase_spectrum(9500.0, 0.003, 20, 160, np.random.default_rng(7))
    again = sase_spectrum(9500.0, 0.003, 20, 160, np.random.default_rng(7))
    other = sase_spectrum(9500.0, 0.003, 20, 160, np.random.default_rng(8))
    assert all(np.array_equal(a, b) for a, b in zip(shot, again)) and not np.array_equal(shot[1], other[1])
    energies, weights = shot
    assert energies.shape == weights.shape == (160,) and weights.min() >= 0 and weights.max() == 1.0
    fwhm = 0.003 * 9500
    assert energies[0] == pytest.approx(9500 - 1.5 * fwhm) and energies[-1] == pytest.approx(9500 + 1.5 * fwhm)
    maxima = np.flatnonzero((weights[1:-1] > weights[:-2]) & (weights[1:-1] > weights[2:]) & (weights[1:-1] > 0.05))
    assert 3 <= len(maxima) <= 40  # spiky: several peaks, of the order of the modes
    mean = np.average(energies, weights=weights)
    assert abs(mean - 9500) < 0.5 * fwhm  # one shot's centre scatters by about sigma / sqrt(spikes)
    # averaged over shots: the envelope, broadened by one spike's width
    rng = np.random.default_rng(1)
    average = sum(sase_spectrum(9500.0, 0.003, 20, 160, rng)[1] for _ in range(300))
    sigma = np.sqrt(np.average((energies - 9500) ** 2, weights=average))
    assert sigma == pytest.approx(fwhm / FWHM_PER_SIGMA * np.sqrt(1 + 1 / 20 ** 2), rel=0.1)
    assert np.average(energies, weights=average) == pytest.approx(9500, abs=0.05 * fwhm)


def test_sase_text_reads_back_as_the_same_numbers():
    spec = SaseSpec.parse("9512.088633676443:0.003:5")
    assert spec.bins == 40 and SaseSpec.parse(spec.text) == spec


STILLS = [*BASE, "-mosaic", "0.4", "-mosaic_domains", "2", "-oversample", "1", "-nopgm", "-noprogress"]


def test_sase_stills_have_their_own_shots_drawn_from_seed_and_index():
    options = RunOptions(spectrum=SpectrumInputs(sase="9500:0.003:8"))
    plan = plan_from_argv("stills", STILLS, options, seed=4, count=3)
    again = plan_from_argv("stills", STILLS, options, seed=4, count=3)
    other_seed = plan_from_argv("stills", STILLS, options, seed=5, count=3)
    shots = [plan.spectrum(k) for k in range(3)]
    assert all(np.array_equal(s.weights, again.spectrum(k).weights) for k, s in enumerate(shots))
    assert not np.array_equal(shots[0].weights, shots[1].weights)
    assert not np.array_equal(shots[0].weights, other_seed.spectrum(0).weights)
    for k, shot in enumerate(shots):
        config = plan.config(k)
        assert config.beam.spectrum is not None and np.array_equal(config.beam.spectrum.wavelengths, shot.wavelengths)
        record = plan.record(k)
        assert record["spectrum"]["weights"] == shot.weights.tolist() and len(record["spectrum"]["energies_eV"]) == 64
        energy = np.average(record["spectrum"]["energies_eV"], weights=record["spectrum"]["weights"])
        assert energy == pytest.approx(9500, rel=0.003)


@pytest.mark.parametrize("extra", [[], ["--energy-jitter", "0.002"]])
def test_a_sase_still_is_nbsim_run_with_its_manifest_flags(tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["stills", *STILLS, "--count", "2", "--seed", "9", "--sase", "9500:0.004:6:50",
                                 *extra, "--template", "s_#.bin"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in open("s.manifest.jsonl")]
    assert records[0]["spectrum"]["weights"] != records[1]["spectrum"]["weights"]
    for k, record in enumerate(records):
        assert "--sase" in record["reproduce"] and "-lambda" not in record["reproduce"]
        result = runner.invoke(cli, ["run", *STILLS, *record["reproduce"], "-floatfile", f"alone{k}.bin"],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        assert open(f"alone{k}.bin", "rb").read() == open(record["file"], "rb").read(), k  # bit for bit


@pytest.mark.parametrize("argv, message", [
    (["stills", *[t for t in STILLS if t not in ("-oversample", "1")], "--count", "2", "--sase", "9500:0.003:8"],
     "give -oversample N"),
    (["stills", *STILLS, "--count", "2", "--spectrum", "s.txt", "--energy-jitter", "0.01"], "use --sase"),
    (["stills", *STILLS, "-lambda", "1", "--count", "2", "--sase", "9500:0.003:8"], "remove -lambda"),
])
def test_sase_dataset_usage_errors(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s.txt", "# wavelength_A weight\n1 1\n")
    result = CliRunner().invoke(cli, [*argv, "--template", "a_#.bin"])
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert os.listdir() == ["s.txt"]
