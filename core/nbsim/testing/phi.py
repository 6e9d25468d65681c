"""Contract suite for phi policies (:class:`nbsim.protocols.PhiPolicy`).

Every policy must rotate the lattice rigidly about the spindle and give R(phi)·base for a
step whose angle is not 0 (policies may differ only at phi = 0, as ``spec`` and ``c-parity``
do); its result for a chunk of passes must not depend on how passes are split into chunks.
"""

from __future__ import annotations

import math

import pytest
import torch

from nbsim.physics.vectors import rotate_axis
from nbsim.protocols import Passes, offers
from nbsim.testing.base import DEVICES, DTYPES, ContractSuite, snapshot, unchanged


def phi_inputs(dtype=torch.float64, device="cpu", angles=(0.0, 0.01, 0.02, 0.0, -0.03), N=12, blocks=2):
    base = torch.tensor([[70e-10, 1e-11, 0.0], [-5e-11, 80e-10, 2e-11], [3e-11, -1e-11, 90e-10]], dtype=dtype,
                        device=device)
    phi = torch.tensor(angles, dtype=dtype, device=device)
    spindle = torch.tensor([0.0, 0.6, 0.8], dtype=dtype, device=device)
    ordinal = torch.arange(N, device=device) + 3
    block = (torch.arange(N, device=device) >= N // 2).to(torch.int64) if blocks > 1 else torch.zeros(
        N, dtype=torch.int64, device=device)
    executed = torch.ones(N, dtype=torch.bool, device=device)
    executed[0] = False
    block_first = torch.tensor([4, 3 + N // 2][:blocks], device=device)
    return base, phi, spindle, Passes(ordinal=ordinal, block=block, executed=executed, block_first=block_first)


def _expand(out, n):
    return out.expand(n, *out.shape[1:])


class BasePhiPolicyTests(ContractSuite):
    def test_has_a_name_and_row_blocks(self, implementation):
        assert isinstance(implementation.name, str) and implementation.name
        assert int(implementation.row_blocks) >= 1
        assert implementation.configure({}) is not None

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_shape_dtype_device(self, implementation, dtype, device):
        base, phi, spindle, passes = phi_inputs(dtype, device)
        out = implementation.orientations(base, phi, spindle, passes)
        assert out.dim() == 4 and out.shape[1:] == (phi.shape[0], 3, 3)
        assert out.shape[0] in (1, passes.ordinal.shape[0])
        assert out.dtype == dtype and out.device.type == device

    def test_nonzero_steps_rotate_the_reference_lattice(self, implementation):
        base, phi, spindle, passes = phi_inputs()
        out = _expand(implementation.orientations(base, phi, spindle, passes), passes.ordinal.shape[0])
        expected = rotate_axis(base[None], spindle, phi[:, None])
        nonzero = phi != 0
        assert torch.allclose(out[:, nonzero], expected[nonzero].expand_as(out[:, nonzero]), rtol=1e-12, atol=0)

    def test_rigid_rotation_about_the_spindle(self, implementation):
        base, phi, spindle, passes = phi_inputs()
        out = implementation.orientations(base, phi, spindle, passes)
        lengths = out.norm(dim=-1)
        assert torch.allclose(lengths, base.norm(dim=-1).expand_as(lengths), rtol=1e-12)
        along = out @ spindle
        assert torch.allclose(along, (base @ spindle).expand_as(along), rtol=1e-10, atol=1e-22)

    def test_chunk_invariance(self, implementation):
        base, phi, spindle, passes = phi_inputs()
        N = passes.ordinal.shape[0]
        whole = _expand(implementation.orientations(base, phi, spindle, passes), N)
        parts = []
        for start in range(0, N, 5):
            sl = slice(start, start + 5)
            piece = Passes(ordinal=passes.ordinal[sl], block=passes.block[sl], executed=passes.executed[sl],
                           block_first=passes.block_first)
            out = implementation.orientations(base, phi, spindle, piece)
            parts.append(_expand(out, piece.ordinal.shape[0]))
        assert torch.equal(whole, torch.cat(parts))

    def test_inputs_not_modified(self, implementation):
        base, phi, spindle, passes = phi_inputs()
        before = snapshot(base, phi, spindle, passes.ordinal, passes.block, passes.executed, passes.block_first)
        implementation.orientations(base, phi, spindle, passes)
        assert unchanged(before, (base, phi, spindle, passes.ordinal, passes.block, passes.executed,
                                  passes.block_first))

    def test_deterministic(self, implementation):
        args = phi_inputs()
        assert torch.equal(implementation.orientations(*args), implementation.orientations(*args))

    def test_gradcheck(self, implementation):
        """Differentiable in the lattice and in the non-zero angles (a zero angle stays exactly 0)."""
        base, phi, spindle, passes = phi_inputs(angles=(0.0, 0.2, 0.0, -0.3), N=4)
        scaled = (base * 1e10).clone().requires_grad_()
        nonzero = phi != 0
        angles = phi[nonzero].clone().requires_grad_()

        def f(b, a):
            p = torch.zeros_like(phi).masked_scatter(nonzero, a)
            out = implementation.orientations(b * 1e-10, p, spindle, passes) * 1e10
            return _expand(out, passes.ordinal.shape[0])

        assert torch.autograd.gradcheck(f, (scaled, angles), eps=1e-6, atol=1e-6, rtol=1e-5)

    def test_single_step_at_zero_is_the_reference_lattice(self, implementation):
        base, _, spindle, passes = phi_inputs()
        out = implementation.orientations(base, torch.zeros(1, dtype=base.dtype), spindle, passes)
        assert torch.allclose(out, base.expand_as(out), rtol=0, atol=math.ulp(1e-8))

    @pytest.mark.parametrize("angles", ["with zero steps", "without"])
    def test_shared_tables_match_orientations(self, implementation, angles):
        """``shared_tables`` lets renderers use one or two tables instead of one per pass: every
        pass must get row 0, and a block's first executed pass row 1 where there are two."""
        if not offers(implementation, "shared_tables", "orientations"):
            pytest.skip("the policy offers no shared_tables")
        base, phi, spindle, passes = phi_inputs()
        if angles == "without":
            phi = phi + 0.3
        tables = implementation.shared_tables(base, phi, spindle)
        assert tables.dim() == 4 and tables.shape[0] in (1, 2) and tables.shape[1:] == (phi.shape[0], 3, 3)
        N = passes.ordinal.shape[0]
        out = _expand(implementation.orientations(base, phi, spindle, passes), N)
        first = passes.first_in_block & passes.executed
        row = first.to(torch.int64) if tables.shape[0] == 2 else torch.zeros(N, dtype=torch.int64)
        assert torch.equal(out, tables[row])
