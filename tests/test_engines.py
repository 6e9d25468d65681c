"""Engines as objects: which one a render gets and why, and a one-line error for one that cannot."""

from __future__ import annotations

import json

import attrs
import pytest
import torch
from click.testing import CliRunner

from nbsim import build_model, config_from_argv, select_physics
from nbsim.engines import compiled
from nbsim.engines.choice import NUMBA_MIN_EVALUATIONS, EngineError, choose, sub_evaluations
from nbsim.plugins.builtins.lattice import RoundLattice, SquareLattice
from nbsim.plugins.selection import Physics
from nbsim_cli.app import cli
from nbsim_lattice_sphere import SphereLattice

SMALL = "-cell 100 100 100 90 90 90 -default_F 100 -N 5 -lambda 1 -distance 100 -detpixels 64"
LARGE = SMALL.replace("-detpixels 64", "-detpixels 512") + " -mosaic 1 -mosaic_dom 20"  # 2.1e7 with 2x2 sub-pixels


@pytest.fixture
def hkl_file(tmp_path):
    path = tmp_path / "P1.hkl"
    path.write_text("".join(f"{h} {k} {l} {10 + h + k + l}\n" for h in range(-3, 4) for k in range(-3, 4)
                            for l in range(-3, 4)))
    return str(path)


def _choice(flags: str, *, engine: str = "auto", lattice: str | None = None, physics=None, params=None):
    config = config_from_argv(flags.split())
    physics = physics or select_physics(config, lattice=lattice)
    m = build_model(config, params=params)
    return choose(engine, m, physics, sub_evaluations(m, m.rendered.shape[0])), m, physics


@pytest.mark.parametrize("flags, name, words", [
    (SMALL, "tensor", "auto: 1.64e+04 sub-evaluations (below numba's 2e+06)"),
    (LARGE, "numba", "auto: 2.1e+07 sub-evaluations, numba from 2e+06"),
    (LARGE + " -round_xtal -nopolar -dmin 2", "numba", "auto:"),
    (LARGE + " -oversample_omega -oversample_polar", "numba", "auto:"),
    (LARGE + " -interpolate -hkl HKL", "numba", "auto:"),
    (LARGE + " -interpolate -hkl HKL -oversample_omega", "tensor", "numba: its loop has no -interpolate with"),
])
def test_auto_picks_by_the_documented_rule(flags, name, words, hkl_file):
    choice, _, _ = _choice(flags.replace("HKL", hkl_file))
    assert choice.name == name and words in choice.reason


def test_auto_steps_aside_for_gradients():
    params = {"distance": torch.tensor(0.1, dtype=torch.float64, requires_grad=True)}
    choice, _, _ = _choice(LARGE, params=params)
    assert choice.name == "tensor" and "numba: it computes no gradients" in choice.reason


@attrs.frozen
class PlainLattice:
    """A third-party lattice factor with a tensor form only."""

    name: str = "plain"

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        return n_cells.prod() * torch.exp(-((hkl - hkl0) ** 2).sum(-1).to(n_cells.dtype))


@attrs.frozen
class ReshapedSphere(SphereLattice):
    """A subclass with physics of its own: the sphere's compiled form does not cover it."""

    name: str = "reshaped-sphere"

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        return 2 * super().evaluate(hkl, hkl0, n_cells, fudge, reciprocal)


def _with_lattice(lattice):
    base = select_physics(config_from_argv(LARGE.split()))
    return Physics(base.policy, lattice, base.polarization)


def test_a_plugin_lattice_with_a_compiled_form_gets_numba():
    choice, _, _ = _choice(LARGE, lattice="sphere")
    assert choice.name == "numba"


@pytest.mark.parametrize("lattice", [PlainLattice(), ReshapedSphere()])
def test_a_lattice_without_a_compiled_form_is_named(lattice):
    choice, _, _ = _choice(LARGE, physics=_with_lattice(lattice))
    reason = f"lattice factor {lattice.name!r} has no compiled form"
    assert choice.name == "tensor" and f"numba: {reason}" in choice.reason
    with pytest.raises(EngineError, match=f"^engine numba cannot render this: {reason}$"):
        _choice(LARGE, physics=_with_lattice(lattice), engine="numba")


@attrs.frozen
class WiderSquare(SquareLattice):
    """A subclass with physics of its own: the built-in's compiled form does not cover it."""

    name: str = "wider-square"

    def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
        return super().evaluate(hkl * 0.5, hkl0, n_cells, fudge, reciprocal)


@attrs.frozen
class RenamedRound(RoundLattice):
    """A subclass that keeps the built-in's physics: its compiled form still applies."""

    name: str = "renamed-round"


@pytest.mark.parametrize("lattice, name", [(WiderSquare(), "tensor"), (RenamedRound(), "numba")])
def test_a_subclass_gets_the_compiled_form_only_with_the_physics_it_was_written_for(lattice, name):
    choice, _, _ = _choice(LARGE, physics=_with_lattice(lattice))
    assert choice.name == name


def test_compiled_is_chosen_for_very_large_renders_numba_cannot_take(monkeypatch, hkl_file):
    monkeypatch.setattr(compiled, "THRESHOLD", {"cpu": NUMBA_MIN_EVALUATIONS})
    choice, _, _ = _choice(LARGE + f" -interpolate -hkl {hkl_file} -oversample_polar")
    expected = "compiled" if compiled.available(torch.device("cpu")) else "tensor"
    assert choice.name == expected and "numba: its loop has no -interpolate with" in choice.reason


def test_an_engine_asked_for_is_taken_when_it_can():
    choice, _, _ = _choice(SMALL, engine="numba")
    assert choice.name == "numba" and choice.reason == "asked for"


def test_unknown_engine_name():
    with pytest.raises(ValueError, match="engine must be one of auto, tensor, compiled, numba"):
        _choice(SMALL, engine="warp")


def test_the_command_names_the_flag_and_the_reason(tmp_path, monkeypatch, hkl_file):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", *SMALL.split(), "-interpolate", "-hkl", "P1.hkl", "-oversample_omega",
                                      "--engine", "numba", "-noprogress"])
    assert result.exit_code == 2
    assert result.stderr == "nbsim: error: --engine numba: its loop has no -interpolate with -oversample_thick/_polar/_omega\n"
    assert result.stdout == "" and [p.name for p in tmp_path.iterdir()] == ["P1.hkl"]


def test_verbose_and_provenance_say_which_engine_and_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", *SMALL.split(), "-noprogress", "-nonoise", "-nopgm", "--verbose",
                                      "--provenance", "run.json"])
    assert result.exit_code == 0, result.stderr
    assert "nbsim: engine tensor (auto: 1.64e+04 sub-evaluations (below numba's 2e+06))\n" in result.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["engine"] == {"name": "tensor", "reason": "auto: 1.64e+04 sub-evaluations (below numba's 2e+06)"}


@attrs.frozen
class OrientationsOnly:
    """A third-party phi policy with orientations only (no shared_tables)."""

    name: str = "orientations-only"
    row_blocks: int = 1

    def configure(self, options):
        return self

    def orientations(self, base, phi, spindle, passes):
        from nbsim.physics.vectors import rotate_axis

        return rotate_axis(base[None, :, :], spindle, phi[:, None])[None]


def test_a_policy_without_shared_tables_is_named():
    base = select_physics(config_from_argv(LARGE.split()))
    choice, _, _ = _choice(LARGE, physics=Physics(OrientationsOnly(), base.lattice, base.polarization))
    assert choice.name == "tensor"
    assert "numba: phi policy 'orientations-only' has no shared_tables" in choice.reason


class ReorientedSpec(type(select_physics(config_from_argv(SMALL.split())).policy)):
    """A subclass of the spec policy with orientations of its own: the inherited shared_tables
    describe the parent's orientations, not these."""

    def orientations(self, base, phi, spindle, passes):
        return super().orientations(base, -phi, spindle, passes)


def test_a_policy_subclass_with_its_own_orientations_loses_shared_tables():
    base = select_physics(config_from_argv(LARGE.split()))
    choice, _, _ = _choice(LARGE, physics=Physics(ReorientedSpec(), base.lattice, base.polarization))
    assert choice.name == "tensor" and "numba: phi policy 'spec' has no shared_tables" in choice.reason
