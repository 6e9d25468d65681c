"""Contract suite for lattice factors (:class:`nbsim.protocols.LatticeFactor`).

Capabilities read from the implementation:

* ``differentiable`` (default True): gradcheck with respect to hkl, the cell counts and the
  fudge factor away from integer and half-integer hkl; when False the gradient with respect
  to hkl must exist, be finite and be zero there (a piecewise-constant factor).
* ``compiled_form()`` (optional, :mod:`nbsim.plugins.compiled_forms`): the compiled form must give
  ``evaluate``'s values (double precision, to rounding), at integer indices too.
"""

from __future__ import annotations

import math

import pytest
import torch

from nbsim.testing.base import DEVICES, DTYPES, ContractSuite, snapshot, unchanged


def lattice_inputs(dtype=torch.float64, device="cpu", shape=(4, 5)):
    """Miller indices (always double precision, as the kernel gives them) and the rest in ``dtype``."""
    gen = torch.Generator().manual_seed(1)
    base = torch.randint(-6, 7, (*shape, 3), generator=gen).to(torch.float64)
    # offsets away from 0 and +-0.5, where rounding and sincg's special case live
    offset = 0.05 + 0.4 * torch.rand((*shape, 3), generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand((*shape, 3), generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    hkl = (base + sign * offset * 0.9).to(device)
    hkl0 = torch.ceil(hkl - 0.5)
    n_cells = torch.tensor([5.0, 4.0, 3.0], dtype=dtype, device=device)
    fudge = torch.tensor(1.3, dtype=dtype, device=device)
    reciprocal = torch.tensor([[0.02, 0.0, 0.0], [0.001, 0.018, 0.0], [0.002, 0.003, 0.015]], dtype=dtype,
                              device=device)
    return hkl, hkl0, n_cells, fudge, reciprocal


def call_lattice_form(form, hkl, n_cells, fudge, reciprocal) -> torch.Tensor:
    """F_latt from a compiled form (a numba cfunc, :mod:`nbsim.plugins.compiled_forms`) for (N, 3) ``hkl``."""
    import ctypes

    import numpy as np

    from nbsim.plugins.compiled_forms import LATTICE_PARAMS

    n = hkl.shape[0]
    flat = np.ascontiguousarray(hkl.T.cpu().numpy(), dtype=np.float64).reshape(-1)  # h..., k..., l...
    params = np.concatenate((n_cells.double().cpu().numpy(), [float(fudge)],
                             reciprocal.double().cpu().numpy().reshape(-1)))
    assert params.shape == (LATTICE_PARAMS,)
    out = np.zeros(n)
    pointer = ctypes.POINTER(ctypes.c_double)
    form.ctypes(flat.ctypes.data_as(pointer), n, params.ctypes.data_as(pointer), out.ctypes.data_as(pointer))
    return torch.from_numpy(out)


class BaseLatticeFactorTests(ContractSuite):
    def test_has_a_name(self, implementation):
        assert isinstance(implementation.name, str) and implementation.name

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_shape_dtype_device(self, implementation, dtype, device):
        args = lattice_inputs(dtype, device)
        out = implementation.evaluate(*args)
        assert out.shape == args[0].shape[:-1]
        assert out.dtype == dtype and out.device.type == device
        assert torch.isfinite(out).all()

    def test_broadcasts_over_leading_dimensions(self, implementation):
        hkl, hkl0, *rest = lattice_inputs(shape=(2, 3, 4))
        whole = implementation.evaluate(hkl, hkl0, *rest)
        flat = implementation.evaluate(hkl.reshape(-1, 3), hkl0.reshape(-1, 3), *rest)
        assert torch.equal(whole.reshape(-1), flat)

    def test_chunk_invariance(self, implementation):
        hkl, hkl0, *rest = lattice_inputs(shape=(10,))
        whole = implementation.evaluate(hkl, hkl0, *rest)
        parts = torch.cat([implementation.evaluate(hkl[i:i + 3], hkl0[i:i + 3], *rest) for i in range(0, 10, 3)])
        assert torch.equal(whole, parts)

    def test_float32_close_to_float64(self, implementation):
        f64 = implementation.evaluate(*lattice_inputs(torch.float64))
        f32 = implementation.evaluate(*lattice_inputs(torch.float32))
        scale = f64.abs().max().clamp_min(1e-30)
        assert ((f32.double() - f64).abs() <= 1e-3 * f64.abs() + 1e-4 * scale).float().mean() > 0.99

    def test_inputs_not_modified(self, implementation):
        args = lattice_inputs()
        before = snapshot(*args)
        implementation.evaluate(*args)
        assert unchanged(before, args)

    def test_deterministic(self, implementation):
        args = lattice_inputs()
        assert torch.equal(implementation.evaluate(*args), implementation.evaluate(*args))

    def test_gradients(self, implementation):
        hkl, hkl0, n_cells, fudge, reciprocal = lattice_inputs(shape=(3,))
        if implementation.differentiable:
            def f(h, n, fu):
                return implementation.evaluate(h, hkl0, n, fu, reciprocal)

            inputs = (hkl.clone().requires_grad_(), n_cells.clone().requires_grad_(), fudge.clone().requires_grad_())
            assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
        else:
            h = hkl.clone().requires_grad_()
            implementation.evaluate(h, hkl0, n_cells, fudge, reciprocal).sum().backward()
            assert h.grad is not None and torch.isfinite(h.grad).all() and not h.grad.any()

    def test_compiled_form_matches_evaluate(self, implementation):
        from nbsim.plugins.compiled_forms import lattice_form_of

        if lattice_form_of(implementation) is None:
            pytest.skip(f"{type(implementation).__name__} offers no compiled form")
        hkl, hkl0, n_cells, fudge, reciprocal = lattice_inputs(shape=(37,))
        hkl = torch.cat((hkl, torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 3.0], [0.5, -0.5, 1.5]],
                                           dtype=torch.float64)))
        hkl0 = torch.ceil(hkl - 0.5)
        expected = implementation.evaluate(hkl, hkl0, n_cells, fudge, reciprocal)
        got = call_lattice_form(lattice_form_of(implementation), hkl, n_cells, fudge, reciprocal)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12 * float(expected.abs().max()))

    def test_declares_whether_it_reads_the_reciprocal_vectors(self, implementation):
        """A factor that says it does not read ``reciprocal`` gives the same values for any."""
        assert isinstance(implementation.reads_reciprocal, bool)
        if implementation.reads_reciprocal:
            pytest.skip("reads the reciprocal vectors (declared)")
        hkl, hkl0, n_cells, fudge, reciprocal = lattice_inputs()
        turned = reciprocal @ torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=reciprocal.dtype)
        assert torch.equal(implementation.evaluate(hkl, hkl0, n_cells, fudge, reciprocal),
                           implementation.evaluate(hkl, hkl0, n_cells, fudge, 2.0 * turned))

    def test_integer_hkl_is_finite(self, implementation):
        hkl = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 3.0]], dtype=torch.float64)
        _, _, n_cells, fudge, reciprocal = lattice_inputs()
        out = implementation.evaluate(hkl, torch.ceil(hkl - 0.5), n_cells, fudge, reciprocal)
        assert torch.isfinite(out).all()
        assert not math.isnan(float(out.sum()))
