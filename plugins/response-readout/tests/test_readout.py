"""nbsim-response-readout: the detector-response contract suite plus this model's statistics."""

from __future__ import annotations

import pytest
import torch

from nbsim.testing import BaseDetectorResponseTests
from nbsim.testing.response import response_inputs
from nbsim_response_readout import Readout


class TestReadout(BaseDetectorResponseTests):
    @pytest.fixture
    def implementation(self):
        return Readout().configure({"sigma": "3.5"})


def test_the_noise_has_the_requested_standard_deviation_and_no_bias():
    image = torch.full((4, 256, 256), 100.0, dtype=torch.float64)
    _, context = response_inputs(seed=4)
    out = Readout().configure({"sigma": "3.5"}).apply(image, context)
    residual = out - image
    assert float(residual.std()) == pytest.approx(3.5, rel=0.01)  # 262144 draws: 0.14% standard error
    assert abs(float(residual.mean())) < 0.03


def test_options_are_checked():
    with pytest.raises(ValueError, match="readout needs sigma"):
        Readout().configure({})
    with pytest.raises(ValueError, match="sigma must be at least 0"):
        Readout().configure({"sigma": "-1"})
    with pytest.raises(ValueError, match="unknown option 'fwhm'"):
        Readout().configure({"sigma": "1", "fwhm": "2"})
