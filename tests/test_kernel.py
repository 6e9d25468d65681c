"""The tensor kernel: chunking, orientation tables, memory plans, precision, gradients.

Its values are held to the numba loop (a scalar transcription of the reference loop, every
feature but -interpolate: ``tests/test_cpu_path.py``) and to the golden outputs of the
reference program itself (``tests/test_golden.py``).
"""

from __future__ import annotations

import attrs
import pytest
import torch

from live_memory import LiveTensorBytes
from nbsim import Simulation, build_model, config_from_argv, select_physics
from nbsim.engines.pipeline import first_passes, render, row_blocks, scanned_first_passes
from nbsim.engines.tensor_kernel import (
    BYTES_PER_PASS,
    BYTES_PER_TERM,
    MIN_PASSES,
    ORIENTATION_BLOCK,
    TARGET_TERMS,
    first_nonzero,
    memory_plan,
)

BASE = "-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1.2 -N 4 -distance 60 -detpixels 6 -pixel 0.5"


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
def test_chunk_size_does_not_change_the_image(policy):
    config = config_from_argv(
        (BASE + " -phi 0 -osc 3 -phisteps 3 -mosaic 1 -mosaic_dom 4 -oversample 2 -oversample_omega").split())
    m = build_model(config)
    physics = select_physics(config, phi_policy=policy, options={"threads": 2} if policy == "c-parity" else None)
    big = render(m, physics, max_memory=1 << 30).image
    small = render(m, physics, max_memory=20_000).image  # one pixel at a time
    assert memory_plan(m, 20_000)[0] == 1 and memory_plan(m, 1 << 30)[0] > 1
    assert torch.equal(big, small)
    tiny = render(m, physics, max_memory=1).image  # one orientation at a time: sums in another order
    assert torch.allclose(big, tiny, rtol=1e-13, atol=0)


@attrs.frozen
class PerPassPolicy:
    """A policy as a third party might write it: orientations only, no shared_tables."""

    inner: object

    @property
    def name(self):
        return self.inner.name

    @property
    def row_blocks(self):
        return self.inner.row_blocks

    def configure(self, options):
        return self

    def orientations(self, base, phi, spindle, passes):
        return self.inner.orientations(base, phi, spindle, passes)


def test_two_orientation_tables_match_one_table_per_pass():
    """c-parity declares that only a block's first pass differs: the kernel then uses two tables."""
    config = config_from_argv(
        (BASE + " -phi 0 -osc 2 -phisteps 3 -mosaic 1 -mosaic_dom 4 -oversample 2").split())
    m = build_model(config)
    physics = select_physics(config, phi_policy="c-parity", options={"threads": 2})
    per_pass = attrs.evolve(physics, policy=PerPassPolicy(physics.policy))
    two_tables = render(m, physics, engine="tensor").image
    assert torch.allclose(two_tables, render(m, per_pass, engine="tensor").image, rtol=1e-13, atol=0)
    spec = render(m, select_physics(config, phi_policy="spec"), engine="tensor").image
    assert not torch.allclose(two_tables, spec, rtol=1e-6, atol=0)  # the first passes' table is in use


def test_memory_plan_by_device_and_fusion():
    """CPU chunks stay cache-sized; GPU chunks and fused (compiled) sums are bounded by the budget alone."""
    config = config_from_argv("-cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -default_F 100 "
                                           "-distance 100 -detpixels 1024 -mosaic 0.5 -mosaic_dom 1000".split())
    m = build_model(config)
    budget = 1 << 30
    cpu_pixels, cpu_block = memory_plan(m, budget)
    assert cpu_block == ORIENTATION_BLOCK and cpu_pixels * cpu_block <= max(TARGET_TERMS, MIN_PASSES * cpu_block)
    gpu = attrs.evolve(m, device=torch.device("cuda"))  # the plan only reads the device's type
    gpu_pixels, gpu_block = memory_plan(gpu, budget)
    assert gpu_block == ORIENTATION_BLOCK and gpu_pixels > 10 * cpu_pixels
    assert gpu_pixels * (BYTES_PER_PASS + gpu_block * BYTES_PER_TERM) <= budget
    assert memory_plan(gpu, budget, fused=True) == (1024 * 1024, ORIENTATION_BLOCK)  # P4 in one chunk
    assert memory_plan(gpu, 1 << 20, fused=True)[0] == (1 << 20) // BYTES_PER_PASS
    assert memory_plan(m, 1, fused=True) == (1, ORIENTATION_BLOCK)


@pytest.mark.parametrize("variant", ["shared_tables", "per_pass_tables", "running_products", "structure_factors",
                                     "interpolation"])
def test_render_stays_within_the_memory_budget(variant, tmp_path):
    """The tensors a render creates never exceed --max-memory, counted exactly, whatever the
    chunker has to account for (a policy with one lattice per pass, every term kept)."""
    flags = "-detpixels 24 -phi 0 -osc 2 -phisteps 4 -mosaic 1 -mosaic_dom 64 -oversample 2"
    if variant == "running_products":
        flags += " -oversample_omega"
    if variant in ("structure_factors", "interpolation"):
        hkl = tmp_path / "t.hkl"
        hkl.write_text("".join(f"{h} {k} 0 {h + k + 3}\n" for h in range(-3, 4) for k in range(-3, 4)))
        flags += f" -hkl {hkl}" + (" -interpolate" if variant == "interpolation" else "")
    config = config_from_argv(f"{BASE} {flags}".split())
    m = build_model(config)
    physics = select_physics(config, phi_policy="c-parity", options={"threads": 2})
    if variant == "per_pass_tables":  # as a third-party policy that declares nothing
        physics = attrs.evolve(physics, policy=PerPassPolicy(physics.policy))
    budget = 2 << 20
    with torch.no_grad(), LiveTensorBytes() as live:
        image = render(m, physics, engine="tensor", max_memory=budget).image
    assert live.peak <= budget
    assert live.peak > budget / 4  # the plan uses the budget: chunks are not needlessly small
    with torch.no_grad():  # the same image (tricubic weights round by batch shape: to 1e-16)
        torch.testing.assert_close(image, render(m, physics, engine="tensor").image, rtol=1e-13, atol=0)


@pytest.mark.parametrize("extra", ["", "-oversample_omega"], ids=["common", "running_products"])
def test_gradient_renders_stay_within_the_memory_budget(extra):
    """With gradients, each chunk is recomputed in the backward pass and holds its graph there:
    forward and backward together stay within the budget."""
    config = config_from_argv(
        f"{BASE} -detpixels 24 -phi 0 -osc 2 -phisteps 4 -mosaic 1 -mosaic_dom 64 -oversample 2 {extra}".split())
    budget = 2 << 20
    sim = Simulation(config, max_memory=budget)
    params = sim.parameters("cell", "distance")
    with LiveTensorBytes() as live:
        sim.image(params).sum().backward()
    assert live.peak <= budget
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params.values())


@pytest.mark.parametrize("roi", ["", "-roi 1 3 2 4", "-roi 0 5 5 5"])
@pytest.mark.parametrize("blocks", [1, 4, 8])  # 8 blocks for 6 rows: some have no rows
def test_first_passes_without_dmin_are_the_first_pixels(roi, blocks):
    config = config_from_argv(f"{BASE} -oversample 2 -dispersion 1 -dispsteps 2 {roi}".split())
    m = build_model(config)
    physics = select_physics(config)
    block_of_row = row_blocks(config.detector.spixels, blocks)
    fast = first_passes(m, block_of_row, blocks)
    assert torch.equal(fast, scanned_first_passes(m, physics, block_of_row, blocks, pixels_per_chunk=5))
    left_without_pixels = blocks == 8 or (blocks > 1 and bool(roi))
    assert bool((fast == -1).any()) == left_without_pixels


def test_first_nonzero():
    x = torch.tensor([[0.0, 0.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0], [5.0, 0.0, 1.0, 0.0]])
    assert first_nonzero(x, 7.0).tolist() == [3.0, 7.0, 5.0]


def test_float32_render_stays_close():
    config = config_from_argv((BASE + " -oversample 2").split())
    physics = select_physics(config)
    f64 = render(build_model(config), physics).image
    f32 = render(build_model(config, dtype=torch.float32), physics).image
    assert f32.dtype == torch.float32
    peak = f64.abs().max()
    assert ((f32.double() - f64).abs() <= 1e-3 * f64.abs() + 1e-4 * peak).all()


def test_gradcheck_few_pixels():
    """Gradients of a few pixels with respect to cell, distance, beam centre and wavelength."""
    config = config_from_argv(
        "-cell 70 80 90 75 85 95 -default_F 100 -lambda 1.2 -N 4 -distance 60 -detpixels 3 -pixel 0.5 -roi 0 1 0 1".split())
    physics = select_physics(config)

    def image(cell, distance_mm, center_mm, wavelength_A):
        params = {"cell": cell, "distance": distance_mm / 1000, "beam_center": center_mm / 1000,
                  "wavelength": wavelength_A * 1e-10}
        return render(build_model(config, params=params), physics).image[:2, :2]

    d = config.detector
    inputs = (
        torch.tensor(config.crystal.cell, dtype=torch.float64, requires_grad=True),
        torch.tensor(d.distance * 1000, dtype=torch.float64, requires_grad=True),
        torch.tensor([d.Xbeam * 1000, d.Ybeam * 1000], dtype=torch.float64, requires_grad=True),
        torch.tensor(config.beam.wavelength * 1e10, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-8, rtol=1e-4)


def test_running_products_in_single_precision_are_taken_in_double():
    """A Gaussian F_latt underflows to 0 in float32 where the reference's double does not, and a
    zero F_latt skips its running-product step: float32 renders must not see those zeros."""
    flags = ("-cell 38.6 48.1 41.2 112.5 72.6 81 -N 8 -lambda 1.533 -osc 6 -default_F 4.8 -roi 0 40 0 40 "
             "-gauss_xtal -oversample_polar -oversample 2").split()
    config = config_from_argv(flags)
    physics = select_physics(config)
    with torch.no_grad():
        double = render(build_model(config), physics, engine="tensor").image
        single = render(build_model(config, dtype=torch.float32), physics, engine="tensor").image
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=1e-6, atol=1e-6 * float(double.max()))


@pytest.mark.parametrize("engine", ["tensor", "numba"])
def test_an_overflowing_running_product_is_infinite_as_in_the_reference(engine):
    """-oversample_omega with point pixels multiplies the running sum by 1/R^2 (~100) after every
    term: the sum overflows to inf in every pixel, in the reference too; never 0 * inf = NaN."""
    flags = ("-default_F 9.1 -N 5 -mosaic 1.173 -dispersion 0.51 -energy 12861.4 -pixel 0.473 -point_pixel "
             "-cell 58.3 31.1 73.1 91.9 109.6 94.2 -oversample_omega -detpixels 16").split()
    config = config_from_argv(flags)
    with torch.no_grad():
        image = render(build_model(config), select_physics(config), engine=engine).image
    assert torch.isinf(image).all() and (image > 0).all()


def test_the_trace_hook_receives_what_its_documentation_says():
    """Keys and shapes of nbsim_trace's tensors (nbsim.plugins.hookspecs) for two traced pixels."""
    flags = (BASE + " -oversample 2 -mosaic 1 -mosaic_dom 3 -phi 0 -osc 1 -phisteps 2 -divergence 1 -divsteps 2"
             " -detector_thick 100 -thicksteps 2").split()
    config = config_from_argv(flags)
    m = build_model(config)
    P, T, n, S, R = 2, m.thicksteps, m.oversample, m.n_sources, m.phisteps * m.domains
    Q = T * n * n * S
    seen = {}
    with torch.no_grad():
        render(m, select_physics(config), trace=lambda stage, chunk, tensors: seen.setdefault(stage, (chunk, tensors)),
               traced=[(1, 2), (3, 4)])
    assert list(seen) == ["geometry", "scattering", "pixel"]
    chunk, geo = seen["geometry"]
    assert chunk["fast"] == [1, 3] and chunk["slow"] == [2, 4] and chunk["format"] == "printout"
    shapes = {k: tuple(v.shape) for k, v in geo.items()}
    assert shapes == {"panel": (P,), "fast": (P,), "slow": (P,), "position": (P, T, n, n, 3), "diffracted": (P, T, n, n, 3),
                      "airpath": (P, T, n, n), "omega": (P, T, n, n), "capture": (P, T, n, n),
                      "scattering": (P, T, n, n, S, 3), "survive": (P, T, n, n, S), "polar": (P, T, n, n, S),
                      "incident": (S, 3)}
    scattering = seen["scattering"][1]
    assert {k: tuple(scattering[k].shape) for k in ("hkl", "hkl0", "F_latt", "F_cell", "term")} == {
        "hkl": (P, Q, R, 3), "hkl0": (P, Q, R, 3), "F_latt": (P, Q, R), "F_cell": (P, Q, R), "term": (P, Q, R)}
    assert scattering["lattice"].shape[1:] == (R, 3, 3) and scattering["r0"] == 0
    pixel = seen["pixel"][1]
    assert {k: tuple(pixel[k].shape) for k in ("I", "value", "omega", "capture", "polar")} == dict.fromkeys(
        ("I", "value", "omega", "capture", "polar"), (P,))
