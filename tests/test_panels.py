"""A detector as a list of panels: a detector cut into panels renders the same pixels."""

import attrs
import numpy as np
import pytest
import torch

from nbsim import config_from_argv
from nbsim.model.config import PanelConfig
from nbsim.model.panels import split_detector
from nbsim.simulation import Simulation

#: a tilted, thick, mosaic, polychromatic job that touches every per-panel quantity
BASE = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 4 -lambda 1.0 -distance 80 "
        "-pixel 0.3 -detpixels 48 -Xbeam 7.9 -Ybeam 6.5 -detector_rotx 4 -detector_roty -3 -twotheta 6 "
        "-mosaic 0.4 -mosaic_domains 3 -dispersion 0.1 -dispsteps 2 -oversample 2 "
        "-detector_thick 0.3 -thicksteps 2 -detector_abs 400").split()


def _rendered(argv, engine, dtype=torch.float64, tiles=(2, 2), **options):
    config = config_from_argv(argv)
    split = split_detector(config, *tiles)
    one = Simulation(config, dtype=dtype, **options)
    many = Simulation(split, dtype=dtype, **options)
    whole = _render(one, engine)
    panels = _render(many, engine)
    return config, whole, panels


def _render(sim, engine):
    from nbsim.engines.pipeline import render

    return render(sim.model(), sim.physics, engine=engine).image


def _tiles(image: torch.Tensor, fast_tiles: int, slow_tiles: int) -> torch.Tensor:
    """(spixels, fpixels) -> (panels, spixels/slow_tiles, fpixels/fast_tiles), panel s*fast_tiles + f."""
    S, F = image.shape
    t = image.reshape(slow_tiles, S // slow_tiles, fast_tiles, F // fast_tiles).permute(0, 2, 1, 3)
    return t.reshape(slow_tiles * fast_tiles, S // slow_tiles, F // fast_tiles)


@pytest.mark.parametrize("engine", ["tensor", "numba"])
@pytest.mark.parametrize("extra", [[], ["-oversample_thick", "-oversample_polar"], ["-round_xtal", "-dmin", "3"]])
def test_four_panels_give_the_single_panel_pixels(engine, extra):
    _, whole, panels = _rendered(BASE + extra, engine)
    assert panels.shape == (4, 24, 24)
    assert whole.max() > 0
    torch.testing.assert_close(panels, _tiles(whole, 2, 2), rtol=1e-10, atol=1e-12 * float(whole.max()))


def test_uneven_tiles_roi_and_c_parity():
    """Tiles of different aspect, an ROI (the split carries it as a mask), the c-parity policy
    with one thread (its one row block starts at the same first pixel)."""
    argv = BASE + ["-roi", "5", "40", "3", "30"]
    _, whole, panels = _rendered(argv, "numba", tiles=(4, 2), phi_policy="c-parity", policy_options={"threads": 1})
    expected = _tiles(whole, 4, 2)
    torch.testing.assert_close(panels, expected, rtol=1e-10, atol=1e-12 * float(whole.max()))
    assert (panels == 0).sum() == (whole == 0).sum()


def test_float32_engines_agree_on_panels():
    _, whole, panels = _rendered(BASE, "numba", dtype=torch.float32)
    _, whole_t, panels_t = _rendered(BASE, "tensor", dtype=torch.float32)
    peak = float(whole.max())
    torch.testing.assert_close(panels, _tiles(whole, 2, 2), rtol=1e-5, atol=1e-6 * peak)
    torch.testing.assert_close(panels, panels_t, rtol=1e-4, atol=1e-5 * peak)


def test_roi_and_pixels_of_a_panel_detector():
    config = split_detector(config_from_argv(BASE), 2, 2)
    sim = Simulation(config)
    image = sim.image()
    crop = sim.image(roi=(3, 10, 5, 9))
    assert crop.shape == (4, 5, 8)
    torch.testing.assert_close(crop, image[:, 5:10, 3:11])
    listed = torch.tensor([[0, 1, 2], [3, 23, 23], [2, 0, 17]])
    values = sim.pixels(listed)
    torch.testing.assert_close(values, image[listed[:, 0], listed[:, 1], listed[:, 2]])


def test_a_thin_panel_beside_thick_ones_captures_everything():
    """Each panel has its own sensor: one without thickness renders as a thin detector does."""
    config = config_from_argv(BASE)
    split = split_detector(config, 2, 1)
    thin = attrs.evolve(split.detector.panels[1], thickness=0.0)
    mixed = attrs.evolve(split, detector=attrs.evolve(split.detector, panels=(split.detector.panels[0], thin)))
    thin_config = attrs.evolve(config, detector=attrs.evolve(config.detector, thickness=0.0))
    for engine in ("tensor", "numba"):
        image = _render(Simulation(mixed), engine)
        thick_whole = _render(Simulation(config), engine)
        thin_whole = _render(Simulation(thin_config), engine)
        torch.testing.assert_close(image[0], thick_whole[:, :24], rtol=1e-10, atol=0)
        torch.testing.assert_close(image[1], thin_whole[:, 24:], rtol=1e-10, atol=0)


def test_panel_gradients_flow_through_the_command_line_panel():
    sim = Simulation(config_from_argv(BASE[:BASE.index("-mosaic")] + ["-detpixels", "16"]))
    params = sim.parameters("distance", "pixel_size")
    sim.image(params).sum().backward()
    assert all(float(p.grad.abs()) > 0 for p in params.values())


def test_panel_configuration_is_checked():
    config = config_from_argv(BASE)
    panels = split_detector(config, 2, 2).detector.panels
    with pytest.raises(ValueError, match="every panel must have the detector's 24x24 pixels"):
        attrs.evolve(config.detector, fpixels=24, spixels=24, panels=(*panels[:3], attrs.evolve(panels[3], fpixels=23)))
    with pytest.raises(ValueError, match="curved"):
        attrs.evolve(config.detector, fpixels=24, spixels=24, panels=panels, curved=True)
    with pytest.raises(ValueError, match="axis must be a finite non-zero vector"):
        PanelConfig(origin=(0.1, 0, 0), fast=(0, 0, 0), slow=(0, 1, 0), pixel_size=1e-4, fpixels=2, spixels=2)
    with pytest.raises(ValueError, match="do not divide"):
        split_detector(config, 5, 1)
    p = PanelConfig(origin=(0.1, 0, 0), fast=(0, 0, 2), slow=(0, -1, 0), pixel_size=1e-4, fpixels=2, spixels=2)
    assert p.fast == (0.0, 0.0, 1.0) and p.normal == (1.0, 0.0, 0.0)
    np.testing.assert_array_equal(split_detector(config, 2, 2).detector.mask.shape, (4, 24, 24))
