"""Gradients of the image with respect to every continuous parameter (float64 gradcheck).

Each check renders a 2x2 region of a tiny detector; the parameter is written
initial + scale*u and gradcheck differentiates with respect to u, so that finite differences
are meaningful whatever the unit (metres, radians, photons/m^2).  The image is divided by a
constant of its own size so that tolerances are relative.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from golden import GOLDEN
from nbsim import config_from_argv
from nbsim.model.build import PARAMETERS
from nbsim.model.panels import split_detector
from nbsim.refine import UNITS
from nbsim.simulation import Simulation

BASE = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1.2 -N 4 -distance 60 "
        "-detpixels 4 -pixel 0.5 -roi 1 2 1 2")

# parameter -> (extra flags that make the configuration use it, scale of u)
CASES = {
    "cell": ("", torch.tensor([1.0, 1.0, 1.0, 1e-3, 1e-3, 1e-3])),
    "misset": ("", 1e-3),
    "n_cells": ("", 1e-2),
    "mosaic_spread": ("-mosaic 0.5 -mosaic_dom 3", 1e-3),
    "phi0": ("-phi 1 -osc 2 -phisteps 3", 1e-3),
    "phistep": ("-phi 0 -osc 2 -phisteps 3", 1e-3),
    "wavelength": ("", 1e-12),
    "dispersion": ("-dispersion 2 -dispsteps 3", 1e-3),
    "hdivrange": ("-divergence 1 -divsteps 3", 1e-4),
    "vdivrange": ("-divergence 1 -divsteps 3", 1e-4),
    "distance": ("", 1e-3),
    "close_distance": ("-close_distance 58", 1e-3),
    "beam_center": ("", 1e-4),
    "detector_rotation": ("-detector_rotx 2 -detector_roty 1 -detector_rotz 3", 1e-3),
    "twotheta": ("-twotheta 5", 1e-3),
    "pixel_size": ("", 1e-6),
    "polarization": ("-polar 0.8", 0.1),
    "fluence": ("", 1e27),
    "default_F": ("", 1.0),
    "structure_factors": ("-hkl tiny.hkl", 1.0),
    "detector_thickness": ("-detector_thick 200 -detector_abs 300 -thicksteps 2", 1e-5),
    "attenuation_depth": ("-detector_thick 200 -detector_abs 300 -thicksteps 2", 1e-5),
    "fudge": ("-gauss_xtal -fudge 1.3", 0.1),
    "reciprocal_matrix": ("MAT", 1e-5),
    "panel_shift": ("PANELS", 1e-4),
    "panel_rotation": ("PANELS", 1e-3),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.hkl").write_text("".join(f"{h} {k} {l} {10 + h + 2 * k + 3 * l}\n"
                                               for h in range(-3, 4) for k in range(-3, 4) for l in range(-3, 4)))
    for name in ("ortho.mat", "P1.hkl"):
        shutil.copy(GOLDEN / "inputs" / name, tmp_path / name)
    return tmp_path


def simulation(extra: str) -> Simulation:
    """The simulation of BASE with ``extra``; PANELS: a detector twice as wide, as two panels
    (each with BASE's region of interest)."""
    if extra == "PANELS":
        return Simulation(split_detector(config_from_argv(flags("-detpixels_x 8")), 2, 1))
    return Simulation.from_argv(flags(extra))


def flags(extra: str) -> list[str]:
    if extra == "MAT":
        return BASE.replace("-cell 70 80 90 75 85 95", "-mat ortho.mat").split()
    return (BASE + " " + extra).split()


def check(sim: Simulation, name: str, scale) -> None:
    start = sim.initial(name)
    scale = torch.as_tensor(scale, dtype=torch.float64)
    norm = sim.image(roi=(1, 2, 1, 2)).abs().max().detach().clamp_min(1e-300)

    def f(u):
        return sim.image({name: start + scale * u}, roi=(1, 2, 1, 2)) / norm

    u = torch.zeros_like(start, requires_grad=True)
    assert torch.autograd.gradcheck(f, (u,), eps=1e-6, atol=1e-7, rtol=1e-3, fast_mode=True)


def test_every_parameter_is_covered():
    assert set(CASES) == set(PARAMETERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_parameter(workdir, name):
    extra, scale = CASES[name]
    check(simulation(extra), name, scale)


@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("name", ["cell", "phistep", "misset"])
def test_gradcheck_both_policies_on_a_sweep_from_zero(workdir, policy, name):
    sim = Simulation.from_argv(flags("-phi 0 -osc 2 -phisteps 3 -mosaic 0.3 -mosaic_dom 2"), phi_policy=policy)
    check(sim, name, CASES[name][1])


@pytest.mark.parametrize("shape", ["-square_xtal", "-round_xtal", "-gauss_xtal", "-tophat_spots -fudge 0.2"])
def test_gradcheck_each_lattice_shape(workdir, shape):
    check(Simulation.from_argv(flags(shape)), "cell", CASES["cell"][1])
    check(Simulation.from_argv(flags(shape)), "n_cells", 1e-2)


def test_gradient_through_interpolated_structure_factors(workdir):
    sim = Simulation.from_argv(flags("-hkl P1.hkl -interpolate -N 2"))
    assert sim.config.crystal.interpolate
    check(sim, "cell", CASES["cell"][1])
    check(sim, "structure_factors", 1.0)


def test_oversample_flags_running_products_are_differentiable(workdir):
    sim = Simulation.from_argv(flags("-oversample 2 -oversample_omega -oversample_polar -polar 0.5"))
    check(sim, "distance", 1e-3)
    check(sim, "polarization", 0.1)


@pytest.mark.parametrize("name, value", [("dispersion", 0.01), ("hdivrange", 1e-3), ("close_distance", 0.05),
                                         ("mosaic_spread", 0.01), ("polarization", 0.5)])
def test_unused_parameters_get_exactly_zero(workdir, name, value):
    sim = Simulation.from_argv(flags("-nopolar"))
    param = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    sim.image({name: param}).sum().backward()
    assert param.grad is not None and param.grad.item() == 0.0


def test_tophat_gradient_is_zero_inside_the_spot(workdir):
    sim = Simulation.from_argv(flags("-tophat_spots -fudge 0.2"))
    params = sim.parameters("cell")
    sim.image(params).sum().backward()
    grad = params["cell"].grad
    assert torch.isfinite(grad).all()
    assert torch.count_nonzero(grad[:3]) == 0  # lengths only move hkl, and the hat is flat


def test_rounding_to_nearest_index_has_zero_gradient(workdir):
    """F_cell jumps where hkl crosses a half-integer: its own gradient is zero, not undefined."""
    sim = Simulation.from_argv(flags("-hkl tiny.hkl"))
    params = sim.parameters("structure_factors", "cell")
    sim.image(params).sum().backward()
    assert torch.isfinite(params["cell"].grad).all()
    assert torch.count_nonzero(params["structure_factors"].grad) > 0


def test_checkpointed_and_plain_gradients_agree(workdir):
    sim = Simulation.from_argv(flags("-phi 0 -osc 2 -phisteps 3"), max_memory=1)
    grads = []
    for checkpoint in (True, False):
        params = sim.parameters("cell", "distance")
        sim.image(params, checkpoint=checkpoint).sum().backward()
        grads.append(torch.cat([params["cell"].grad, params["distance"].grad[None]]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-12, atol=0)


def test_pixels_and_roi_match_the_image(workdir):
    sim = Simulation.from_argv(flags(""))
    image = sim.image()
    assert torch.equal(sim.image(roi=(1, 2, 1, 2)), image[1:3, 1:3])
    assert torch.equal(sim.pixels(torch.tensor([[2, 1], [1, 2]])), torch.stack((image[2, 1], image[1, 2])))


#: a realistic image: triclinic cell, 96 x 96 pixels oversampled twice, mosaic domains, phi
#: steps, dispersion, polarization, a rotated detector (every refinable parameter acts)
REALISTIC = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1.0 -distance 80 -pixel 0.3 "
             "-detpixels 96 -oversample 2 -mosaic 0.3 -mosaic_dom 3 -phi 0.5 -osc 0.4 -phisteps 2 -dispersion 0.2 "
             "-dispsteps 2 -polar 0.5 -detector_rotx 1 -twotheta 2 -noprogress")


#: relative steps where the image changes too little over 1e-5 for a difference to keep digits
#: (0.2% dispersion moved by 1e-5 of itself changes the weighted sum by 1e-9 of it)
WIDER_STEPS = {"dispersion": 1e-3, "hdivrange": 2e-3, "vdivrange": 2e-3}
#: the size of a parameter that starts at 0, to which its steps are relative (1 otherwise):
#: a panel moved by 10 nm, turned by 1 microradian (a pixel's light moves smoothly that far)
SIZE_AT_ZERO = {"panel_shift": 1e-3, "panel_rotation": 0.1}
#: where differences themselves disagree beyond 1e-6 between steps (dispersion: 5e-6), the
#: comparison can hold them to no more (issue 18 asks for 1e-6: open for dispersion)
LOOSER = {"dispersion": 1e-5}


#: flags that make the realistic image depend on a parameter it otherwise ignores
REALISTIC_EXTRA = {"close_distance": "-close_distance 79.5", "hdivrange": "-divergence 2 -divsteps 3",
                   "vdivrange": "-divergence 2 -divsteps 3", "structure_factors": "-hkl P1.hkl",
                   "fudge": "-gauss_xtal -fudge 1.3",
                   "detector_thickness": "-detector_thick 200 -detector_abs 300 -thicksteps 2",
                   "attenuation_depth": "-detector_thick 200 -detector_abs 300 -thicksteps 2"}
#: parameters of a detector given as panels: the realistic detector split in two halves
ON_PANELS = ("panel_shift", "panel_rotation")
#: of a long parameter (one amplitude per reflection) the elements of largest gradient checked
MOST_SENSITIVE = 6


def realistic_simulation(name: str) -> Simulation:
    config = config_from_argv((REALISTIC + " " + REALISTIC_EXTRA.get(name, "")).split())
    return Simulation(split_detector(config, 1, 2) if name in ON_PANELS else config)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_every_refinable_parameter_matches_central_differences_on_a_realistic_image(workdir, name):
    """Autograd against Richardson-extrapolated central differences (steps of 1e-5 and 5e-6
    relative) of a weighted image sum: 1e-6 relative, what refinement relies on, for every
    parameter ``nbsim refine`` refines (``nbsim.refine.UNITS``)."""
    sim = realistic_simulation(name)
    # positive weights: a sum of terms of both signs would cancel the digits a difference needs
    weights = 0.5 + torch.rand(sim.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    params = sim.parameters(name)
    start = params[name].detach().clone()
    (sim.image(params) * weights).sum().backward()
    gradient = params[name].grad.reshape(-1)
    assert torch.count_nonzero(gradient) > 0, name
    elements = range(start.numel())
    if start.numel() > MOST_SENSITIVE:
        elements = gradient.abs().argsort(descending=True)[:MOST_SENSITIVE].tolist()
    for i in elements:
        value = abs(float(start.reshape(-1)[i]))
        step = WIDER_STEPS.get(name, 1e-5) * (value if value else SIZE_AT_ZERO.get(name, 1.0))

        def weighted(shift):  # rendered as the gradient is (the tensor engine), not by the CPU loop
            x = start.clone().reshape(-1)
            x[i] += shift
            x = x.reshape(start.shape).requires_grad_(True)
            return float((sim.image({name: x}) * weights).sum().detach())

        def central(h):
            return (weighted(h) - weighted(-h)) / (2 * h)

        difference = (4.0 * central(step / 2) - central(step)) / 3.0  # Richardson: the h^2 error cancels
        assert float(gradient[i]) == pytest.approx(difference, rel=LOOSER.get(name, 1e-6)), (name, i)
