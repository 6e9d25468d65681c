"""physics.dual_math: the functions shared formulas are written with give the same numbers
in their tensor, Python and numba forms."""

from __future__ import annotations

import numpy as np
import torch

from nbsim.physics import dual_math, jit


def _compiled_quotients():
    numba = jit.numba()  # registers the numba forms before anything is compiled

    @numba.njit(fastmath={"contract"})
    def quotients(x, y):
        out = np.empty_like(x)
        for i in range(x.shape[0]):  # y is loop-invariant, as a wavelength is in the loop
            out[i] = dual_math.divide(x[i], y)
        return out

    return quotients


def test_compiled_divide_is_the_correctly_rounded_quotient():
    """numba's form multiplies by 1/y and corrects the result: it must equal x / y exactly."""
    quotients = _compiled_quotients()
    rng = np.random.default_rng(7)
    x = np.concatenate((rng.uniform(-2.0, 2.0, 200_000), rng.standard_normal(50_000) * 10.0 ** rng.uniform(-8, 8, 50_000)))
    for y in np.concatenate((rng.uniform(5e-11, 5e-10, 20), 10.0 ** rng.uniform(-12, 12, 20), [1.0, 3.0, 0.1])):
        np.testing.assert_array_equal(quotients(x, y), x / y)


def test_divide_tensor_and_number_forms():
    x = torch.tensor([1.0, -0.3, 2.0], dtype=torch.float64, requires_grad=True)
    q = dual_math.divide(x, 1.5e-10)
    assert torch.equal(q, x / 1.5e-10)
    q.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 1 / 1.5e-10))
    assert dual_math.divide(1.0, 3.0) == 1.0 / 3.0
