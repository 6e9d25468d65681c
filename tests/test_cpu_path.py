"""The compiled CPU loop (engine "numba") against the tensor kernel."""

from __future__ import annotations

import subprocess
import sys

import attrs
import pytest
import torch

from nbsim import build_model, config_from_argv, select_physics
from nbsim.engines import compiled
from nbsim.engines import numba_engine as cpu
from nbsim.engines.choice import EngineError
from nbsim.engines.pipeline import render
from nbsim.plugins.builtins.polarization import KahnPolarization
from nbsim.testing import BasePolarizationModelTests

BASE = "-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1.2 -N 4 -distance 60 -detpixels 8 -pixel 0.5"
VARIANTS = {
    "plain": "",
    "sources_phi_mosaic": "-divergence 1 -divsteps 3 -dispersion 1 -dispsteps 3 -phi 0 -osc 2 -phisteps 3 "
                          "-mosaic 1 -mosaic_dom 3 -oversample 2",
    "layers_kahn_dmin_water": "-detector_thick 200 -detector_abs 300 -thicksteps 3 -polar 0.8 -dmin 2.2 -water 50",
    "round": "-round_xtal -fudge 1.3", "gauss": "-gauss_xtal", "tophat": "-tophat_spots -fudge 0.3",
    "curved_point_nopolar": "-curved_det -point_pixel -nopolar",
    "roi_phi_through_zero": "-roi 1 5 2 6 -phi -1 -osc 2 -phisteps 2",
    "many_sources": "-divergence 2 -divsteps 5 -dispersion 2 -dispsteps 3 -square_div",
    # running products: the factor multiplies the running sum after every term
    "running_omega": "-oversample 2 -oversample_omega -mosaic 1 -mosaic_dom 3",
    "running_all": "-detector_thick 200 -detector_abs 300 -thicksteps 2 -oversample 2 -oversample_thick "
                   "-oversample_polar -oversample_omega -polar 0.8 -phi 0 -osc 2 -phisteps 2",
    "running_skips_zero_lattice": "-tophat_spots -fudge 0.3 -oversample 2 -oversample_omega -mosaic 3 -mosaic_dom 4",
    "running_water_skips_nothing": "-tophat_spots -fudge 0.3 -oversample 2 -oversample_omega -water 50",
    "running_polar_dmin_sources": "-oversample_polar -dmin 2.2 -divergence 1 -divsteps 3 -dispersion 1 -dispsteps 2",
    "running_nopolar": "-nopolar -oversample_polar -round_xtal",
    "running_thick_zero": "-oversample_thick -gauss_xtal",
    "running_dmin_water_polar": "-dmin 2.2 -water 50 -polar 0.9 -oversample 2 -oversample_omega",
    "running_thick_omega_layers": "-oversample 2 -detector_thick 200 -detector_abs 300 -thicksteps 2 "
                                  "-oversample_thick -oversample_omega",
}


def _engine_matches_tensor(m, physics, engine: str) -> None:
    """Render with ``engine`` (which must be the one that runs) and with the tensor kernel: equal to rounding."""
    with torch.no_grad():
        tensor = render(m, physics, engine="tensor").image
        other = render(m, physics, engine=engine)
    assert other.engine.name == engine
    assert torch.allclose(other.image, tensor, rtol=1e-11, atol=1e-14 * float(tensor.abs().max()))


@pytest.fixture
def hkl(tmp_path):
    path = tmp_path / "t.hkl"
    path.write_text("".join(f"{h} {k} {l} {5 + abs(h) + 2 * abs(k) + 3 * abs(l)}\n"
                            for h in range(-4, 5) for k in range(-4, 5) for l in range(-4, 5)))
    return str(path)


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_numba_matches_tensor_kernel(variant, policy):
    config = config_from_argv((BASE + " " + VARIANTS[variant]).split())
    physics = select_physics(config, phi_policy=policy, options={"threads": 3} if policy == "c-parity" else None)
    m = build_model(config)
    assert cpu.refusal(m, physics) is None
    _engine_matches_tensor(m, physics, "numba")


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("with_hkl", [False, True])
@pytest.mark.parametrize("running", [False, True])
def test_numba_with_a_plugin_lattice_compiled_form(policy, with_hkl, running, hkl):
    """The sphere plugin's compiled form in the loop (every pass, and c-parity's first pass of a
    block, with constant and tabulated F, summed or as running products) against its tensor form."""
    flags = (BASE + " -mosaic 1 -mosaic_dom 3 -phi 0 -osc 2 -phisteps 2" + (f" -hkl {hkl} -default_F 0" if with_hkl else "")
             + (" -oversample 2 -oversample_omega -oversample_polar" if running else ""))
    config = config_from_argv(flags.split())
    physics = select_physics(config, lattice="sphere", phi_policy=policy,
                             options={"threads": 3} if policy == "c-parity" else None)
    _engine_matches_tensor(build_model(config), physics, "numba")


def test_numba_with_structure_factors(hkl):
    config = config_from_argv(f"{BASE} -hkl {hkl} -default_F 0".split())
    physics = select_physics(config)
    m = build_model(config)
    with torch.no_grad():
        tensor = render(m, physics, engine="tensor").image
        fast = render(m, physics, engine="numba").image
    assert torch.allclose(fast, tensor, rtol=1e-11, atol=1e-14 * float(tensor.abs().max()))


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("lattice", [None, "sphere"])
@pytest.mark.parametrize("extra", ["-detpixels 4 -pixel 0.1", "", "-N 2 -detpixels 12 -pixel 1",
                                   "-dmin 2.5 -tophat_spots -fudge 0.3"])
def test_numba_interpolates_as_the_tensor_kernel(policy, lattice, extra, hkl):
    """Tricubic F in the loop: every pass, c-parity's first pass of a block, compiled forms,
    and the switch to nearest neighbour at the same evaluation as the tensor kernel (the
    grid's -4..4 reaches over the small detector, not over the others: there the switch comes
    mid-image, and the tophat and -dmin cuts decide which evaluations count)."""
    flags = f"{BASE} -hkl {hkl} -default_F 0 -interpolate -mosaic 1 -mosaic_dom 3 -phi 0 -osc 2 -phisteps 2 {extra}"
    config = config_from_argv(flags.split())
    physics = select_physics(config, lattice=lattice, phi_policy=policy,
                             options={"threads": 3} if policy == "c-parity" else None)
    m = build_model(config)
    assert cpu.refusal(m, physics) is None
    with torch.no_grad():
        tensor = render(m, physics, engine="tensor")
        fast = render(m, physics, engine="numba", max_memory=1 << 16)  # small chunks: the switch crosses them
    assert fast.engine.name == "numba"
    assert torch.allclose(fast.image, tensor.image, rtol=1e-11, atol=1e-14 * float(tensor.image.abs().max()))
    _same_switch(fast.interpolation_switch, tensor.interpolation_switch)
    assert (tensor.interpolation_switch is None) == ("-detpixels 4" in extra)


def _same_switch(a, b):
    """The same evaluation ended interpolation: equal nearest indices, hkl equal to rounding."""
    assert (a is None) == (b is None)
    if a is not None:
        assert a[3:] == b[3:] and a[:3] == pytest.approx(b[:3], rel=1e-12)


def test_numba_interpolation_switch_on_panels(hkl):
    """The switch found in a later panel ends interpolation for the rest of the image."""
    from nbsim.model.panels import split_detector

    flags = f"{BASE} -hkl {hkl} -default_F 0 -interpolate -N 2 -detpixels 12 -pixel 1"
    config = split_detector(config_from_argv(flags.split()), 2, 3)
    physics = select_physics(config)
    m = build_model(config)
    with torch.no_grad():
        tensor = render(m, physics, engine="tensor")
        fast = render(m, physics, engine="numba")
    assert tensor.interpolation_switch is not None
    _same_switch(fast.interpolation_switch, tensor.interpolation_switch)
    assert torch.allclose(fast.image, tensor.image, rtol=1e-11, atol=1e-14 * float(tensor.image.abs().max()))


@pytest.mark.parametrize("extra, reason", [
    ("-interpolate -hkl HKL -oversample_polar", "its loop has no -interpolate with -oversample_thick/_polar/_omega"),
    ("GRAD", "it computes no gradients, and a parameter requires one"),
])
def test_numba_refuses_what_it_does_not_cover_and_auto_steps_aside(extra, reason, hkl):
    config = config_from_argv((BASE + " " + extra.replace("HKL", hkl)).replace("GRAD", "").split())
    physics = select_physics(config)
    params = {"distance": torch.tensor(0.06, dtype=torch.float64, requires_grad=True)} if extra == "GRAD" else None
    m = build_model(config, params=params)
    with torch.set_grad_enabled(extra == "GRAD"):
        assert cpu.refusal(m, physics) == reason
        with pytest.raises(EngineError, match=f"^engine numba cannot render this: {reason}$"):
            render(m, physics, engine="numba")
        auto = render(m, physics, engine="auto")
    assert auto.engine.name == "tensor"  # a render this small does not ask numba: see test_engines


def test_unknown_engine():
    config = config_from_argv(BASE.split())
    with pytest.raises(ValueError, match="engine"):
        render(build_model(config), select_physics(config), engine="warp")


SINGLE = {
    # near a reference: one reference orientation, or one per phi step; sources near their mean
    "one_group": ("-mosaic 1 -mosaic_dom 20 -divergence 1 -divsteps 2", cpu.loop().NEAR),
    "per_phi_step": ("-phi 0 -osc 40 -phisteps 3 -mosaic 0.5 -mosaic_dom 5", cpu.loop().NEAR),
    "sources": ("-divergence 1 -divsteps 3 -dispersion 1 -dispsteps 3 -phi 0 -osc 2 -phisteps 2",
                cpu.loop().NEAR),
    "wide_phi": ("-phi 0 -osc 90 -phisteps 4 -dispersion 0.5 -dispsteps 2", cpu.loop().NEAR),
    # too far from any reference, or one evaluation per reference: double precision
    "one_per_reference": ("-phi 0 -osc 90 -phisteps 4", cpu.loop().DOUBLE),
    "wide_mosaic": ("-mosaic 30 -mosaic_dom 6", cpu.loop().DOUBLE),
    "round": ("-round_xtal -mosaic 1 -mosaic_dom 20", cpu.loop().DOUBLE),
    "fractional_N": ("-mosaic 1 -mosaic_dom 20 N=4.5", cpu.loop().DOUBLE),
}


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("structure_factors", [False, True])
@pytest.mark.parametrize("case", SINGLE)
def test_single_precision_loop_is_close(case, structure_factors, policy, hkl):
    """float32 sums (h split into a double reference and a single remainder) stay near float64."""
    extra, mode = SINGLE[case]
    argv = f"{BASE} {extra}" + (f" -hkl {hkl} -default_F 3" if structure_factors else "")
    # N is whole on the command line; the Python API also takes real numbers
    params = {"n_cells": torch.tensor([4.5, 4.0, 4.0], dtype=torch.float64)} if "N=4.5" in argv else None
    config = config_from_argv(argv.replace("N=4.5", "").split())
    physics = select_physics(config, phi_policy=policy, options={"threads": 3} if policy == "c-parity" else None)
    single_model = build_model(config, dtype=torch.float32, params=params)
    tables, _ = cpu._variant_tables(single_model, physics)
    plan = cpu._precision_plan(single_model, physics, tables)
    assert plan[0] == mode
    if case == "per_phi_step":  # the phi range is too wide for one reference: one per phi step
        assert plan[1].shape[0] == 3
    with torch.no_grad():
        reference = render(build_model(config, params=params), physics, engine="tensor").image
        single = render(single_model, physics, engine="numba").image
    assert single.dtype == torch.float32
    peak = reference.abs().max()
    assert ((single.double() - reference).abs() <= 1e-5 * reference.abs() + 1e-6 * peak).all()


def test_compiled_engine_on_a_tiny_case():
    """The torch.compile engine in the default run (the slow test below covers more): a tiny
    render, compiled once (cached on disk afterwards), against the tensor kernel."""
    if not compiled.available(torch.device("cpu")):
        pytest.skip("torch.compile needs a C++ compiler here")
    config = config_from_argv(f"{BASE} -detpixels 4 -mosaic 1 -mosaic_dom 3".split())
    physics = select_physics(config)
    _engine_matches_tensor(build_model(config), physics, "compiled")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("fuse_all", [False, True], ids=["cpu-options", "gpu-options"])
def test_compiled_engine_matches_tensor_kernel(policy, fuse_all, hkl, monkeypatch):
    """torch.compile'd orientation sums (slow: compiles; run with -m slow), also as GPUs compile
    them (wholly fused, no memory counted per sub-evaluation)."""
    monkeypatch.setattr(compiled, "fuses_everything", lambda device: fuse_all)
    monkeypatch.setattr(compiled, "_compiled", {})
    config = config_from_argv(
        f"{BASE} -hkl {hkl} -mosaic 1 -mosaic_dom 70 -phi 0 -osc 2 -phisteps 3".split())
    physics = select_physics(config, phi_policy=policy)
    m = build_model(config)
    with torch.no_grad():
        tensor = render(m, physics, engine="tensor").image
        fused = render(m, physics, engine="compiled").image
    assert torch.allclose(fused, tensor, rtol=1e-11, atol=1e-14 * float(tensor.abs().max()))


def test_small_renders_do_not_import_numba():
    """Importing numba costs about 0.3 s: a render the tensor kernel does must not pay it."""
    code = ("import sys; from nbsim import build_model, config_from_argv, select_physics; from nbsim.engines.pipeline import render; "
            f"c = config_from_argv({BASE.split()!r}); render(build_model(c), select_physics(c)); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def _unpolarized_form():
    """A third-party polarization model's compiled form: (1 + cos^2 2θ)/2 whatever the Kahn factor."""
    from numba import carray, cfunc

    from nbsim.plugins.compiled_forms import polarization_signature

    @cfunc(polarization_signature())
    def form(incident, diffracted, n, params, out):
        i = carray(incident, (3,))
        d = carray(diffracted, (3 * n,))
        values = carray(out, (n,))
        for q in range(n):
            c = i[0] * d[q] + i[1] * d[n + q] + i[2] * d[2 * n + q]
            values[q] = 0.5 * (1.0 + c * c)

    return form


class Unpolarized:
    name = "unpolarized"

    def factor(self, incident, diffracted, axis, kahn):
        c = (incident * diffracted).sum(-1)
        return 0.5 * (1.0 + c * c)

    def compiled_form(self):
        return _unpolarized_form()


class LouderKahn(KahnPolarization):
    """A subclass with physics of its own: the parent's compiled form does not cover it."""

    def factor(self, incident, diffracted, axis, kahn):
        return 2.0 * super().factor(incident, diffracted, axis, kahn)


@pytest.mark.parametrize("running", [False, True])
def test_a_plugin_polarization_model_gets_the_loop_through_its_compiled_form(running):
    flags = BASE + " -polar 0.6 -divergence 1 -divsteps 3 -mosaic 1 -mosaic_dom 3" + (" -oversample_polar" if running else "")
    config = config_from_argv(flags.split())
    physics = attrs.evolve(select_physics(config), polarization=Unpolarized())
    m = build_model(config)
    assert cpu.refusal(m, physics) is None
    _engine_matches_tensor(m, physics, "numba")
    louder = attrs.evolve(physics, polarization=LouderKahn())
    assert cpu.refusal(m, louder) == "polarization model 'kahn' has no compiled form"


class TestUnpolarizedContract(BasePolarizationModelTests):
    @pytest.fixture
    def implementation(self):
        return Unpolarized()
