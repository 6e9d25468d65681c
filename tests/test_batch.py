"""Images rendered together (nbsim.engines.batch): each the image its own render gives, bit
for bit, whatever the batch; only images that differ in orientation share one."""

from __future__ import annotations

import shlex
from pathlib import Path

import attrs
import pytest
import torch

import nbsim
from nbsim.datasets import plan_from_argv
from nbsim.engines import batch
from nbsim.engines.pipeline import render
from nbsim.model.build import build_model
from nbsim.model.panels import split_detector
from nbsim.plugins.selection import select_physics

BASE = "-cell 70 80 90 75 85 95 -default_F 100 -lambda 1 -N 5 -distance 100 -detpixels 48 -pixel 0.5 -noprogress"
HKL = Path(__file__).resolve().parents[1] / "examples" / "P1.hkl"


def models(kind: str, argv: str, n: int = 3, *, dtype=torch.float64, split=None):
    """The models of a dataset's first ``n`` images (``kind`` stills or series), as nbsim's
    dataset commands make them (sharing their structure factors and arrays)."""
    size = {"count": n} if kind == "stills" else {"frames": n}
    plan = plan_from_argv(kind, shlex.split(argv), seed=5, **size)
    configs = [plan.config(k) for k in range(n)]
    if split:  # one detector for all, as a dataset's images share theirs
        detector = split_detector(configs[0], *split).detector
        configs = [attrs.evolve(c, detector=detector) for c in configs]
    return [build_model(c, dtype=dtype) for c in configs]


def assert_each_is_its_own_render(ms, physics, **kwargs):
    for m in ms[1:]:
        assert batch.together(ms[0], m, physics)
    with torch.no_grad():
        alone = [render(m, physics, engine="tensor").image for m in ms]
    together = batch.render_batch(ms, physics, **kwargs)
    for one, joined in zip(alone, together):
        assert one.dtype == joined.dtype and one.shape == joined.shape
        assert torch.equal(one, joined)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stills_with_their_own_mosaic_domains(dtype):
    ms = models("stills", f"{BASE} -mosaic 0.5 -mosaic_dom 4 -oversample 2 -hkl {HKL}", dtype=dtype)
    assert_each_is_its_own_render(ms, select_physics(ms[0].config))


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
def test_series_frames_under_both_phi_policies(policy):
    """c-parity's frame at phi = 0 has a second table (its stale vectors) the others lack."""
    ms = models("series", f"{BASE} -phi 0 -phisteps 3 -osc 0.3 -hkl {HKL}", 4)
    assert ms[0].config.sampling.phi0 == 0.0
    assert_each_is_its_own_render(ms, select_physics(ms[0].config, phi_policy=policy))


def test_images_whose_orientations_take_several_blocks():
    ms = models("series", f"{BASE} -phisteps 20 -osc 2 -mosaic 0.3 -mosaic_dom 5", 2)  # 100 orientations each
    assert_each_is_its_own_render(ms, select_physics(ms[0].config))


def test_small_budgets_panels_and_a_resolution_cut():
    ms = models("stills", f"{BASE} -mosaic 0.5 -mosaic_dom 3 -dmin 4", split=(2, 2))
    assert_each_is_its_own_render(ms, select_physics(ms[0].config), max_memory=2_000_000)


def test_a_shape_that_reads_the_reciprocal_vectors_batches_frames_not_stills():
    frames = models("series", f"{BASE} -gauss_xtal -phisteps 2 -osc 0.3")
    physics = select_physics(frames[0].config)
    assert physics.lattice.reads_reciprocal
    assert_each_is_its_own_render(frames, physics)
    stills = models("stills", f"{BASE} -gauss_xtal")
    assert not batch.together(stills[0], stills[1], physics)


@pytest.mark.parametrize("other", ["-N 6", "-lambda 1.01", "-distance 101", "-mosaic 0.6 -mosaic_dom 4",
                                   "-phisteps 2 -osc 0.3", "-default_F 90"])
def test_only_orientation_may_differ(other):
    first = build_model(nbsim.config_from_argv(shlex.split(f"{BASE} -mosaic 0.5 -mosaic_dom 4 -misset 10 20 30")))
    second = build_model(attrs.evolve(first.config, **_changed(first.config, other)))
    assert batch.together(first, build_model(attrs.evolve(first.config)), select_physics(first.config))
    assert not batch.together(first, second, select_physics(first.config))


def _changed(config, flags: str) -> dict:
    """The parts of ``config`` that ``flags`` change, keeping the rest (its arrays) as they are."""
    other = nbsim.config_from_argv(shlex.split(f"{BASE} -mosaic 0.5 -mosaic_dom 4 -misset 10 20 30 {flags}"))
    return {part: getattr(other, part) for part in ("beam", "detector", "crystal", "sampling")
            if getattr(other, part) != getattr(config, part)}


def test_what_a_batch_cannot_render_is_said():
    m = models("stills", BASE, 1)[0]
    physics = select_physics(m.config)
    assert batch.refusal(m, physics, "tensor") is None
    assert "numba engine" in batch.refusal(m, physics, "numba")
    running = build_model(nbsim.config_from_argv(shlex.split(f"{BASE} -oversample_omega")))
    assert "running products" in batch.refusal(running, physics, "tensor")


def test_a_dataset_renders_its_stills_together_and_the_same_files_one_at_a_time(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from nbsim_cli.app import cli

    monkeypatch.chdir(tmp_path)
    sizes = []
    joined = batch.render_batch
    monkeypatch.setattr(batch, "render_batch", lambda ms, *a, **k: sizes.append(len(ms)) or joined(ms, *a, **k))
    flags = ["stills", *shlex.split(f"{BASE} -mosaic 0.4 -mosaic_domains 3 -seed 2"), "--count", "5", "--seed", "4"]
    for name, extra in (("together", []), ("alone", ["--batch", "1"])):
        result = CliRunner().invoke(cli, [*flags, *extra, "--template", f"{name}_#.cbf"], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
    assert sizes == [5]  # the first run's five stills in one batch, none in the second
    for k in range(1, 6):
        assert (tmp_path / f"together_{k}.cbf").read_bytes() == (tmp_path / f"alone_{k}.cbf").read_bytes()


def test_a_cpu_batch_holds_images_of_a_few_tens_of_mb():
    budget = 1 << 30  # the default working memory: a quarter of it for the batch's images on a GPU
    large = build_model(nbsim.config_from_argv(shlex.split("-cell 100 100 100 90 90 90 -N 5 -default_F 1 -detpixels 1024")))
    small = build_model(nbsim.config_from_argv(shlex.split("-cell 100 100 100 90 90 90 -N 5 -default_F 1 -detpixels 128")))
    assert batch.images_per_batch(large, budget) == batch.CPU_BATCH_BYTES // (8 * 1024 * 1024) == 4
    assert batch.images_per_batch(small, budget) == batch.MAX_IMAGES
    assert batch.images_per_batch(large, 8 << 20) == 1  # never none
