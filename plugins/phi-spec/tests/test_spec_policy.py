"""nbsim-phi-spec: the contract suite, and what makes ``spec`` what it is."""

from __future__ import annotations

import pytest
import torch

from nbsim.physics.vectors import rotate_axis
from nbsim.testing import BasePhiPolicyTests
from nbsim.testing.phi import phi_inputs
from nbsim_phi_spec import SpecPolicy


class TestSpecPolicy(BasePhiPolicyTests):
    @pytest.fixture
    def implementation(self):
        return SpecPolicy()


def test_zero_steps_use_the_reference_lattice_in_every_pass():
    base, phi, spindle, passes = phi_inputs(angles=(0.0, 0.3, 0.0))
    out = SpecPolicy().orientations(base, phi, spindle, passes)
    assert out.shape[0] == 1
    assert torch.equal(out[0, 0], base) and torch.equal(out[0, 2], base)
    assert torch.allclose(out[0, 1], rotate_axis(base, spindle, phi[1]))


def test_registered_through_its_entry_point():
    from nbsim.plugins.system import build_system

    system = build_system()
    assert system.phi_policies.owner("spec") == "phi-spec"
