"""Contract suite for image transforms (:class:`nbsim.protocols.ImageTransform`)."""

from __future__ import annotations

import functools

import pytest
import torch

from nbsim.testing.base import DEVICES, DTYPES, ContractSuite, snapshot, unchanged

#: a small job on a detector of two panels, 12 x 10 pixels each
ARGV = "-cell 50 60 70 90 90 90 -default_F 100 -N 3 -lambda 1.0 -distance 50 -pixel 0.4 -detpixels_f 24 -detpixels_s 10"


@functools.cache
def _model():
    from nbsim import config_from_argv
    from nbsim.model.build import build_model
    from nbsim.model.panels import split_detector

    return build_model(split_detector(config_from_argv(ARGV.split()), 2, 1))


def transform_inputs(dtype=torch.float64, device="cpu"):
    """(image (2, 10, 12) of positive values, the model of its detector)."""
    gen = torch.Generator().manual_seed(5)
    image = 1.0 + 100.0 * torch.rand((2, 10, 12), generator=gen, dtype=torch.float64)
    return image.to(dtype=dtype, device=device), _model()


class BaseImageTransformTests(ContractSuite):
    def test_has_a_name_and_a_halo(self, implementation):
        assert isinstance(implementation.name, str) and implementation.name
        assert isinstance(implementation.halo, int) and implementation.halo >= 0

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_shape_dtype_device(self, implementation, dtype, device):
        image, model = transform_inputs(dtype, device)
        out = implementation.apply(image, model)
        assert out.shape == image.shape
        assert out.dtype == dtype and out.device.type == device
        assert torch.isfinite(out).all()

    def test_a_pixel_reaches_only_its_halo_in_its_panel(self, implementation):
        """What the image stage relies on to render regions: changing one pixel changes the
        output only within ``halo`` of it, along fast and slow, and only in its own panel."""
        image, model = transform_inputs()
        base = implementation.apply(image, model)
        h = implementation.halo
        for panel, slow, fast in ((0, 5, 6), (1, 0, 11), (1, 9, 0)):
            changed = image.clone()
            changed[panel, slow, fast] *= 3.0
            moved = implementation.apply(changed, model) != base
            reach = torch.zeros_like(moved)
            reach[panel, max(slow - h, 0):slow + h + 1, max(fast - h, 0):fast + h + 1] = True
            assert not (moved & ~reach).any(), f"pixel {(panel, slow, fast)} changed pixels beyond halo {h}"
            assert moved.any(), f"pixel {(panel, slow, fast)} changed nothing"

    def test_inputs_not_modified(self, implementation):
        image, model = transform_inputs()
        before = snapshot(image)
        implementation.apply(image, model)
        assert unchanged(before, [image])

    def test_deterministic(self, implementation):
        image, model = transform_inputs()
        assert torch.equal(implementation.apply(image, model), implementation.apply(image, model))

    def test_gradcheck(self, implementation):
        image, model = transform_inputs()
        small = image[:, :6, :7].clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda x: implementation.apply(x, model), (small,),
                                        eps=1e-6, atol=1e-6, rtol=1e-4)
