"""The image stage: transforms of whole panels after the render, with halos for regions."""

import attrs
import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from nbsim import config_from_argv
from nbsim.engines.pipeline import render
from nbsim.errors import PluginError
from nbsim.model.build import build_model
from nbsim.model.panels import split_detector
from nbsim.plugins import system as plugins
from nbsim.plugins.hookspecs import hookimpl
from nbsim.plugins.selection import select_physics
from nbsim.protocols import ImageTransform
from nbsim.testing import BaseImageTransformTests
from plugin_set import plugin_system


@attrs.frozen
class BoxBlur(ImageTransform):
    """Mean over the (2 halo + 1)^2 pixels around each pixel of its panel (zero beyond the edges)."""

    name: str = "box-blur"
    halo: int = 1

    def apply(self, image, model):
        k = 2 * self.halo + 1
        return nnf.avg_pool2d(image[:, None], k, stride=1, padding=self.halo, count_include_pad=True)[:, 0]


@attrs.frozen
class Gain(ImageTransform):
    """Pixel-wise: ADUs per photon, an option of the transform."""

    name: str = "gain"
    halo: int = 0
    gain: float = 1.0

    def configure(self, options):
        return attrs.evolve(self, gain=options.get("gain", self.gain))

    def apply(self, image, model):
        return image * self.gain


class StagePlugin:
    plugin_name = "test-stage"

    @hookimpl
    def nbsim_register_image_transforms(self, register):
        register(BoxBlur())
        register(Gain())

    @hookimpl
    def nbsim_register_options(self, register):
        register("--gain", keyword="gain", type=float, default=1.0, help="ADU per photon", owner="gain")


class TestBoxBlurContract(BaseImageTransformTests):
    @pytest.fixture
    def implementation(self):
        return BoxBlur(halo=2)


class TestGainContract(BaseImageTransformTests):
    @pytest.fixture
    def implementation(self):
        return Gain(gain=2.5)


ARGV = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1.0 -distance 60 "
        "-pixel 0.2 -detpixels 40 -Xbeam 3.9 -Ybeam 4.1 -oversample 1").split()


@pytest.fixture
def system():
    return plugin_system(StagePlugin())


def _physics(config, system, stage=(), **kw):
    return select_physics(config, image_stage=stage, system=system, **kw)


def _blurred(image: torch.Tensor) -> torch.Tensor:
    return BoxBlur().apply(image.reshape(-1, *image.shape[-2:]).to(torch.float64), None).reshape(image.shape)


@pytest.mark.parametrize("engine", ["tensor", "numba"])
def test_the_stage_transforms_the_whole_render(system, engine):
    config = config_from_argv(ARGV)
    m = build_model(config)
    plain = render(m, _physics(config, system), engine=engine).image
    staged = render(m, _physics(config, system, ("box-blur",)), engine=engine).image
    assert plain.max() > 0
    torch.testing.assert_close(staged, _blurred(plain), rtol=1e-12, atol=0)


def test_an_roi_render_gets_its_neighbours_from_outside_the_roi(system):
    """The halo is rendered beyond the ROI, so ROI pixels at its edge get what a whole render
    gives them; pixels outside the ROI stay 0, as the reference leaves them."""
    config = config_from_argv(ARGV)
    roi_config = config_from_argv(ARGV + ["-roi", "10", "25", "5", "30"])
    physics = _physics(config, system, ("box-blur", "gain"), options={"gain": 3.0})
    whole = render(build_model(config), physics).image
    region = render(build_model(roi_config), physics).image
    inside = np.zeros(whole.shape, dtype=bool)
    inside[5:31, 10:26] = True
    torch.testing.assert_close(region[inside], whole[inside], rtol=1e-12, atol=0)
    assert (region[~inside] == 0).all()
    torch.testing.assert_close(whole, 3.0 * _blurred(render(build_model(config), _physics(config, system)).image))


def test_pixel_lists_and_panels_get_their_neighbours(system):
    config = split_detector(config_from_argv(ARGV), 2, 2)
    m = build_model(config)
    physics = _physics(config, system, ("box-blur",))
    whole = render(m, physics).image
    assert whole.shape == (4, 20, 20)
    wanted = torch.tensor([0, 19, 20 * 20 + 21, 3 * 400 + 399, 2 * 400 + 7 * 20 + 13])
    values = render(m, physics, pixels=wanted).values
    torch.testing.assert_close(values, whole.reshape(-1)[wanted], rtol=1e-12, atol=0)
    # blurred panel by panel: nothing crosses from one panel to the next
    plain = render(m, _physics(config, system)).image
    torch.testing.assert_close(whole, _blurred(plain), rtol=1e-12, atol=0)


def test_gradients_flow_through_the_stage(system):
    config = config_from_argv(ARGV[:ARGV.index("-detpixels")] + ["-detpixels", "12"])
    distance = torch.tensor(config.detector.distance, dtype=torch.float64, requires_grad=True)
    m = build_model(config, params={"distance": distance})
    render(m, _physics(config, system, ("box-blur",))).image.sum().backward()
    assert float(distance.grad.abs()) > 0


def test_unknown_transform_names_what_is_installed(system):
    config = config_from_argv(ARGV)
    with pytest.raises(PluginError, match=r"unknown image transform 'blur' \(installed: box-blur, gain\)"):
        _physics(config, system, ("blur",))


def test_a_transform_that_changes_the_shape_is_named(system):
    @attrs.frozen
    class Crop:
        name: str = "crop"
        halo: int = 0

        def apply(self, image, model):
            return image[:, 1:]

    config = config_from_argv(ARGV)
    physics = attrs.evolve(_physics(config, system), image_stage=(Crop(),))
    with pytest.raises(ValueError, match="image transform 'crop' returned shape"):
        render(build_model(config), physics)


def test_the_command_line_runs_the_stage_and_records_it(system, tmp_path, monkeypatch):
    import json

    from nbsim import runner

    monkeypatch.chdir(tmp_path)
    argv = ARGV + ["-floatfile", "plain.bin", "-nopgm", "-nonoise", "-intfile", "plain.img"]
    with plugins.plugins_in_use(system):
        plain = runner.run(argv, runner.RunOptions(), echo=lambda s: None).image
        staged = runner.run([*argv[:-4], "-intfile", "staged.img", "-floatfile", "staged.bin"],
                            runner.RunOptions(image_stage=("gain",), plugin_options={"gain": 2.0},
                                              provenance="p.json"), echo=lambda s: None).image
    np.testing.assert_allclose(staged, 2.0 * plain, rtol=1e-6)
    np.testing.assert_array_equal(np.fromfile("staged.bin", dtype=np.float32).reshape(staged.shape), staged)
    record = json.loads((tmp_path / "p.json").read_text())
    assert record["image_stage"] == [{"name": "gain", "plugin": "test-stage"}]


def test_cli_options_belong_to_selected_transforms(system):
    from nbsim.errors import UsageError
    from nbsim_cli.app import _plugin_choices

    assert _plugin_choices(system, "spec", ("gain",), {"gain": 2.0}) == {"gain": 2.0}
    assert _plugin_choices(system, "spec", ("gain",), {}) == {"gain": 1.0}
    with pytest.raises(UsageError, match="--gain belongs to gain, which is not selected"):
        _plugin_choices(system, "spec", (), {"gain": 2.0})
