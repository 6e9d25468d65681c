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
    limit = n * torch.where(k * (n - 1) % 2 == 0, 1.0, -1.0)  # N (-1)^(k (N - 1)) at integer h
    want = torch.where(h == k, limit, _library_sinpi(n * h) / _library_sinpi(h))
    # relative to the peak N: near the ratio's zeros a pointwise relative bound means nothing
    assert (got.double() - want).abs().max() <= tolerance * n
