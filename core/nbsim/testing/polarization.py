"""Contract suite for polarization models (:class:`nbsim.protocols.PolarizationModel`).

* ``compiled_form()`` (optional, :mod:`nbsim.plugins.compiled_forms`): the compiled form must give
  ``factor``'s values (double precision, to rounding).
"""

from __future__ import annotations

import pytest
import torch

from nbsim.testing.base import DEVICES, DTYPES, ContractSuite, snapshot, unchanged


def polarization_inputs(dtype=torch.float64, device="cpu", P=6, S=3):
    gen = torch.Generator().manual_seed(2)
    incident = torch.tensor([1.0, 0.0, 0.0]) + 0.01 * torch.randn((S, 3), generator=gen, dtype=torch.float64)
    incident = incident / incident.norm(dim=-1, keepdim=True)
    diffracted = torch.tensor([1.0, 0.0, 0.0]) + 0.6 * torch.randn((P, 1, 3), generator=gen, dtype=torch.float64)
    diffracted = diffracted / diffracted.norm(dim=-1, keepdim=True)
    axis = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    kahn = torch.tensor(0.7, dtype=torch.float64)
    return tuple(x.to(dtype=dtype, device=device) for x in (incident, diffracted, axis, kahn))


def call_polarization_form(form, incident, diffracted, axis, kahn) -> torch.Tensor:
    """Factors from a compiled form (a numba cfunc, :mod:`nbsim.plugins.compiled_forms`) for one
    ``incident`` (3,) and (N, 3) ``diffracted``."""
    import ctypes

    import numpy as np

    from nbsim.plugins.compiled_forms import POLARIZATION_PARAMS

    n = diffracted.shape[0]
    i = np.ascontiguousarray(incident.double().cpu().numpy())
    d = np.ascontiguousarray(diffracted.T.double().cpu().numpy()).reshape(-1)  # x..., y..., z...
    params = np.concatenate(([float(kahn)], axis.double().cpu().numpy()))
    assert params.shape == (POLARIZATION_PARAMS,)
    out = np.zeros(n)
    pointer = ctypes.POINTER(ctypes.c_double)
    form.ctypes(i.ctypes.data_as(pointer), d.ctypes.data_as(pointer), n, params.ctypes.data_as(pointer),
                out.ctypes.data_as(pointer))
    return torch.from_numpy(out)


class BasePolarizationModelTests(ContractSuite):
    def test_has_a_name(self, implementation):
        assert isinstance(implementation.name, str) and implementation.name

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_shape_dtype_device(self, implementation, dtype, device):
        incident, diffracted, axis, kahn = polarization_inputs(dtype, device)
        out = implementation.factor(incident, diffracted, axis, kahn)
        assert out.shape == (diffracted.shape[0], incident.shape[0])
        assert out.dtype == dtype and out.device.type == device

    def test_physical_range_and_forward_scattering(self, implementation):
        incident, diffracted, axis, kahn = polarization_inputs()
        out = implementation.factor(incident, diffracted, axis, kahn)
        assert ((out >= -1e-12) & (out <= 1 + 1e-12)).all()
        forward = implementation.factor(incident, incident[:, None, :].transpose(0, 1), axis, kahn)
        assert torch.allclose(forward, torch.ones_like(forward))

    def test_chunk_invariance(self, implementation):
        incident, diffracted, axis, kahn = polarization_inputs()
        whole = implementation.factor(incident, diffracted, axis, kahn)
        parts = torch.cat([implementation.factor(incident, diffracted[i:i + 4], axis, kahn) for i in range(0, 6, 4)])
        assert torch.equal(whole, parts)

    def test_inputs_not_modified(self, implementation):
        args = polarization_inputs()
        before = snapshot(*args)
        implementation.factor(*args)
        assert unchanged(before, args)

    def test_deterministic(self, implementation):
        args = polarization_inputs()
        assert torch.equal(implementation.factor(*args), implementation.factor(*args))

    def test_gradcheck(self, implementation):
        incident, diffracted, axis, kahn = polarization_inputs(P=2, S=2)
        inputs = tuple(x.clone().requires_grad_() for x in (incident, diffracted, kahn))

        def f(i, d, k):
            return implementation.factor(i, d, axis, k)

        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-4)

    @pytest.mark.parametrize("kahn", [0.0, 0.7, 1.0])
    def test_compiled_form_matches_factor(self, implementation, kahn):
        from nbsim.plugins.compiled_forms import polarization_form_of

        if polarization_form_of(implementation) is None:
            pytest.skip(f"{type(implementation).__name__} offers no compiled form")
        incident, diffracted, axis, _ = polarization_inputs(P=40, S=2)
        K = torch.tensor(kahn, dtype=torch.float64)
        for s in range(incident.shape[0]):
            expected = implementation.factor(incident[s], diffracted[:, 0], axis, K)
            got = call_polarization_form(implementation.compiled_form(), incident[s], diffracted[:, 0], axis, K)
            torch.testing.assert_close(got, expected.expand(got.shape), rtol=1e-12, atol=1e-14)
