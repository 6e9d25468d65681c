"""The exactly reduced sine of ``nbsim.physics.trig`` (used by compiled code) against double precision."""

import math

import pytest
import torch

from nbsim.physics.trig import sincg_pi, sinpi


def _arguments() -> torch.Tensor:
    grid = torch.linspace(-60.0, 60.0, 20001, dtype=torch.float64)
    near = torch.arange(-60.0, 61.0, dtype=torch.float64)[:, None] + torch.tensor([-1e-9, 0.0, 3e-12, 1e-6, 0.25])
    return torch.cat((grid, near.reshape(-1)))


def _library_sinpi(t: torch.Tensor) -> torch.Tensor:
    """sin(πt) from the library sine after the same exact reduction (so near-integer t keeps its digits)."""
    k = torch.round(t)
    return torch.sin(math.pi * (t - k)) * torch.where(k % 2 == 0, 1.0, -1.0)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-13), (torch.float32, 3e-7)])
def test_sinpi_polynomial_matches_the_library_sine(dtype, tolerance):
    t = _arguments()
    got = sinpi(t, dtype)
    assert got.dtype == dtype
    assert torch.allclose(got.double(), _library_sinpi(t), rtol=tolerance, atol=tolerance * 1e-3)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("n", [1.0, 5.0, 10.0, 47.0])
def test_sincg_pi_is_the_lattice_ratio(dtype, tolerance, n):
    h = _arguments()
    got = sincg_pi(h, torch.tensor(n, dtype=dtype))
    assert got.dtype == dtype
    k = torch.round(h)
    r = h - k  # exact
    sign = torch.where(k * (n - 1) % 2 == 0, 1.0, -1.0)  # (-1)^(k (N - 1)) for integer N
    # sin(pi N h)/sin(pi h) = (-1)^(k (N - 1)) sin(pi N r)/sin(pi r): N r keeps every digit of the
    # distance to the peak, which N h rounded at once does not (5 x 14.999999999999998 is not 75 - 1e-14)
    want = torch.where(h == k, n * sign, sign * torch.sin(math.pi * n * r) / torch.sin(math.pi * r))
    # relative to the peak N: near the ratio's zeros a pointwise relative bound means nothing
    assert (got.double() - want).abs().max() <= tolerance * n


@pytest.mark.parametrize("k", [3, 17, 40, 99])
def test_the_square_lattice_gradient_near_a_bragg_peak_has_its_analytic_value(k):
    """d/dh sin(pi N h)/sin(pi h) at h = k + r, r = 1e-6: -N (N^2 - 1) pi^2 r / 3 (its series; the
    r^3 term is 1e-12 of it). The unreduced sine gave the wrong sign at k = 17."""
    from nbsim.plugins.builtins.lattice import SquareLattice

    n = torch.tensor([5.0, 7.0, 1.0], dtype=torch.float64)
    h = torch.tensor([[k + 1e-6, -k - 2e-6, 0.25]], dtype=torch.float64, requires_grad=True)
    square = SquareLattice()
    unit = torch.eye(3, dtype=torch.float64)
    square.evaluate(h, None, n, torch.tensor(1.0, dtype=torch.float64), unit).sum().backward()
    with torch.no_grad():
        plain = square.evaluate(h, None, n, torch.tensor(1.0, dtype=torch.float64), unit)
    values = [sincg_pi(h.detach()[0, i], n[i]) for i in range(3)]
    # the render's eager path (library sines of pi h rounded) agrees to what its rounding allows
    assert float(plain) == pytest.approx(float(values[0] * values[1] * values[2]), rel=1e-8)
    for axis in (0, 1):
        N = float(n[axis])
        r = float(h.detach()[0, axis]) - round(float(h.detach()[0, axis]))
        derivative = -N * (N * N - 1) * math.pi ** 2 * r / 3
        others = float(values[1 - axis] * values[2])
        assert float(h.grad[0, axis]) == pytest.approx(derivative * others, rel=1e-4), axis
