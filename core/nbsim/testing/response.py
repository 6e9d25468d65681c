"""Contract suite for detector responses (:class:`nbsim.protocols.DetectorResponse`).

The ``implementation`` fixture gives a configured response (``configure({...})`` with the
options the tests should use).
"""

from __future__ import annotations

import functools

import pytest
import torch

from nbsim.physics.counter_random import CounterRandom
from nbsim.protocols import ResponseContext
from nbsim.testing.base import DEVICES, DTYPES, ContractSuite, snapshot, unchanged

#: a job on a detector of two panels of 16 x 12 pixels (0.4 mm)
ARGV = "-cell 50 60 70 90 90 90 -default_F 100 -N 3 -lambda 1.0 -distance 50 -pixel 0.4 -detpixels_f 32 -detpixels_s 12"


@functools.cache
def _config():
    from nbsim import config_from_argv
    from nbsim.model.panels import split_detector

    return split_detector(config_from_argv([*ARGV.split(), "-seed", "3"]), 2, 1)


def response_inputs(dtype=torch.float64, device="cpu", *, seed: int = 11):
    """(image (2, 12, 16) of positive values, a context whose generator is seeded ``seed``)."""
    gen = torch.Generator().manual_seed(5)
    image = 1.0 + 100.0 * torch.rand((2, 12, 16), generator=gen, dtype=torch.float64)
    context = ResponseContext(pixel_size=torch.full((2,), 4e-4, dtype=torch.float64),
                              random=CounterRandom(seed), config=_config(), notes=[])
    return image.to(dtype=dtype, device=device), context


class BaseDetectorResponseTests(ContractSuite):
    def test_declares_its_nature(self, implementation):
        assert isinstance(implementation.name, str) and implementation.name
        for flag in ("differentiable", "random", "conserves_total"):
            assert isinstance(getattr(implementation, flag), bool), flag

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_shape_dtype_device(self, implementation, dtype, device):
        image, context = response_inputs(dtype, device)
        out = implementation.apply(image, context)
        assert out.shape == image.shape and out.dtype == dtype and out.device.type == device
        assert torch.isfinite(out).all()

    def test_does_not_modify_its_input(self, implementation):
        image, context = response_inputs()
        before = snapshot(image)
        implementation.apply(image, context)
        assert unchanged(before, [image])

    def test_the_same_seed_gives_the_same_image(self, implementation):
        """Random responses draw from the context's generator only: reproducible from a seed,
        whatever else ran before in the process."""
        image, first = response_inputs(seed=21)
        a = implementation.apply(image, first)
        torch.rand(100)  # the global generator moves: nothing may depend on it
        image, second = response_inputs(seed=21)
        assert torch.equal(a, implementation.apply(image, second))
        if implementation.random:
            image, other = response_inputs(seed=22)
            assert not torch.equal(a, implementation.apply(image, other)), "a random response ignores its generator"

    def test_panels_do_not_mix(self, implementation):
        """A pixel depends on pixels of its own panel only."""
        image, context = response_inputs()
        base = implementation.apply(image, context)
        changed = image.clone()
        changed[1] *= 2.0
        image, context = response_inputs()
        assert torch.equal(implementation.apply(changed, context)[0], base[0])

    def test_conserves_the_total_where_it_says_so(self, implementation):
        if not implementation.conserves_total:
            pytest.skip("does not claim to conserve the total")
        image = torch.zeros((2, 96, 96), dtype=torch.float64)  # room for a kernel of up to 47 pixels' radius
        image[0, 48, 48] = 1000.0
        _, context = response_inputs()
        out = implementation.apply(image, context)
        assert float(out[0].sum()) == pytest.approx(1000.0, rel=1e-9)
        assert float(out[1].abs().max()) < 1e-9

    def test_gradcheck(self, implementation):
        if not implementation.differentiable:
            pytest.skip("not differentiable (declared)")
        image, _ = response_inputs()
        image = image.clone().requires_grad_(True)

        def f(x):
            _, context = response_inputs(seed=31)  # the same draws at every evaluation
            return implementation.apply(x, context)

        assert torch.autograd.gradcheck(f, (image,), eps=1e-6, atol=1e-6, rtol=1e-4)
