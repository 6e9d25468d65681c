"""Refinement: recover cell, distance, beam centre and misset from a noisy simulated image.

A reduced version of the example of docs/refinement.md (the same 256x256 pixels of 0.2 mm at
60 mm, wavelength 1 Å: diffraction to two-theta beyond 30 degrees, so that cell and distance
are not degenerate; one sub-pixel per pixel instead of the automatic three), through the
command line and through the Python API.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from nbsim.errors import InputError, UsageError
from nbsim.refine import Refinement, read_observed
from nbsim.simulation import Simulation
from nbsim_cli.app import cli

COMMON = "-default_F 100 -lambda 1 -N 5 -pixel 0.2 -detpixels 256 -oversample 1"
TRUTH = f"-cell 50 60 70 85 95 105 -misset 10 20 30 -distance 60 {COMMON}"
# 1% off in cell and distance, 0.5 pixel in the beam centre, 0.2 degree in misset
START = (f"-cell 50.5 59.4 70.7 85.85 94.05 106.05 -misset 10.2 19.8 30.2 -distance 60.6 "
         f"-Xbeam 25.8 -Ybeam 25.6 {COMMON}")
TRUE_BEAM = (51.2 + 0.2) / 2  # the MOSFLM default, mm


@pytest.fixture(scope="module")
def truth_image(tmp_path_factory):
    work = tmp_path_factory.mktemp("truth")
    import os

    previous = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(cli, ["run", *TRUTH.split(), "-seed", "3", "-noisefile", "truth.img",
                                          "-nopgm", "-noprogress"])
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.stderr
    return work / "truth.img"


def check_recovered(values: dict) -> None:
    cell = values["cell"]
    for got, want in zip(cell[:3], (50, 60, 70)):
        assert abs(got / want - 1) < 5e-4
    for got, want in zip(cell[3:], (85, 95, 105)):
        assert abs(got / want - 1) < 5e-4
    assert abs(values["distance"][0] / 60 - 1) < 5e-4
    for got in values["beam_center"]:
        assert abs(got - TRUE_BEAM) / 0.2 < 0.02  # pixels
    for got, want in zip(values["misset"], (10, 20, 30)):
        assert abs(got - want) < 0.01  # degrees


def test_refine_command_recovers_the_truth(truth_image, tmp_path):
    out = tmp_path / "refined.json"
    result = CliRunner().invoke(cli, ["refine", *START.split(), "--observed", str(truth_image),
                                      "--refine", "cell,distance,beam_center,misset", "--json", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "spots " in result.stderr and "stage 1x1" in result.stderr and "refined" in result.output
    record = json.loads(out.read_text())
    refined = {k: v["refined"] for k, v in record["parameters"].items()}
    assert record["parameters"]["distance"]["start"] == [pytest.approx(60.6)]
    assert record["parameters"]["misset"]["unit"] == ["deg", "deg", "deg"]
    check_recovered(refined)
    assert record["loss"][-1] < record["loss"][0]


def test_python_api_with_adam_moves_towards_the_truth(truth_image):
    sim = Simulation.from_argv(START.split())
    refinement = Refinement(sim, read_observed(str(truth_image), sim), ["distance"])
    result = refinement.run(optimizer="adam", stages=(1,), iterations=15)
    assert abs(result.refined["distance"][0] - 60) < abs(60.6 - 60)
    assert result.loss[-1] < result.loss[0]


def test_bad_refine_requests():
    sim = Simulation.from_argv(START.split())
    with pytest.raises(UsageError, match="unknown parameter"):
        Refinement(sim, None, ["colour"])
    with pytest.raises(InputError, match="--observed"):
        read_observed("missing.img", sim)
    result = CliRunner().invoke(cli, ["refine", *START.split(), "--observed", "missing.img", "--refine", "cell"])
    assert result.exit_code == 1 and result.stderr.startswith("nbsim: error: --observed")
    assert math.isfinite(sim.initial("distance").item()) and isinstance(sim.initial("cell"), torch.Tensor)


def test_a_parameter_the_image_does_not_depend_on_is_named(truth_image):
    """Under the XDS convention -Xbeam/-Ybeam do not move the detector: refining beam_center
    there is said, with what to refine instead, and the parameter keeps its value."""
    sim = Simulation.from_argv([*START.split(), "-xds"])
    refinement = Refinement(sim, read_observed(str(truth_image), sim), ["beam_center", "distance"])
    assert refinement.inert() == ["beam_center"]
    said = []
    result = refinement.run(optimizer="adam", stages=(1,), iterations=2, warn=said.append)
    assert len(said) == 1 and "--refine beam_center" in said[0] and "-ORGX/-ORGY" in said[0]
    assert result.refined["beam_center"] == result.start["beam_center"]


def test_a_loss_that_becomes_nan_stops_the_refinement_with_an_error(truth_image, monkeypatch):
    from nbsim.errors import RefinementError

    sim = Simulation.from_argv(START.split())
    refinement = Refinement(sim, read_observed(str(truth_image), sim), ["distance"])
    finite = refinement.loss
    calls = []

    def loss(block=1):  # a model that turns impossible on the third evaluation
        value, scale = finite(block)
        calls.append(1)
        return (value * math.nan if len(calls) >= 3 else value), scale

    monkeypatch.setattr(refinement, "loss", loss)
    with pytest.raises(RefinementError, match=r"the loss became nan .* the last finite parameters: distance 60\.\d+"):
        refinement.run(optimizer="adam", stages=(1,), iterations=5)
    assert torch.isfinite(refinement.coords.u["distance"]).all()
