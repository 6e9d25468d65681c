"""nbsim-phi-c-parity: the contract suite, the carry-over rules, threads and the CLI option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nbsim import build_model, config_from_argv, select_physics
from nbsim.engines.pipeline import render
from nbsim.errors import UsageError
from nbsim.physics.vectors import rotate_axis
from nbsim.testing import BasePhiPolicyTests
from nbsim.testing.phi import phi_inputs
from nbsim_phi_c_parity import CParityPolicy


class TestCParityPolicy(BasePhiPolicyTests):
    @pytest.fixture
    def implementation(self):
        return CParityPolicy(threads=2)


def rotated(base, spindle, angle):
    return rotate_axis(base, spindle, torch.tensor(angle, dtype=base.dtype))


def test_zero_steps_reuse_the_previous_rotation():
    base, phi, spindle, passes = phi_inputs(angles=(0.0, 0.1, 0.2, 0.0, 0.3))
    out = CParityPolicy().orientations(base, phi, spindle, passes)
    first = passes.first_in_block & passes.executed
    later = out[~first][0]
    assert torch.allclose(later[0], rotated(base, spindle, 0.3))  # last step of the previous pass
    assert torch.allclose(later[3], rotated(base, spindle, 0.2))  # latest non-zero in this pass
    start = out[first][0]
    assert torch.equal(start[0], base)  # a thread's first pass starts from the reference lattice


def test_no_zero_step_or_all_zero_gives_one_table():
    base, phi, spindle, passes = phi_inputs(angles=(0.1, 0.2))
    assert CParityPolicy().orientations(base, phi, spindle, passes).shape[0] == 1
    base, phi, spindle, passes = phi_inputs(angles=(0.0, 0.0))
    out = CParityPolicy().orientations(base, phi, spindle, passes)
    assert out.shape[0] == 1 and torch.equal(out[0, 1], base)


def test_threads_must_be_positive():
    with pytest.raises(UsageError, match="--c-threads"):
        CParityPolicy().configure({"threads": 0})
    assert CParityPolicy().configure({"threads": 3}).row_blocks == 3


ARGV = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -pixel 0.4 -detpixels 9 "
        "-phi 0 -osc 2 -phisteps 3")


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 20])
def test_thread_blocks_differ_exactly_at_their_first_pixel(threads):
    config = config_from_argv(ARGV.split())
    m = build_model(config)
    one = render(m, select_physics(config, phi_policy="c-parity")).image
    many = render(m, select_physics(config, phi_policy="c-parity", options={"threads": threads})).image
    rows = 9
    q, r = divmod(rows, threads)
    starts = [t * q + min(t, r) for t in range(threads) if (q + (t < r)) > 0]
    differ = (one != many).nonzero().tolist()
    assert differ == [[s, 0] for s in starts if s != 0]


def test_gradcheck_with_a_sweep_from_zero():
    config = config_from_argv((ARGV + " -roi 0 1 0 1").split())
    physics = select_physics(config, phi_policy="c-parity")

    def f(cell, phistep_deg):
        params = {"cell": cell, "phistep": phistep_deg * torch.pi / 180}
        return render(build_model(config, params=params), physics).image[:2, :2]

    cell = torch.tensor(config.crystal.cell, dtype=torch.float64, requires_grad=True)
    step = torch.tensor(config.sampling.phistep * 180 / torch.pi, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (cell, step), eps=1e-6, atol=1e-8, rtol=1e-4)


def test_cli_option_only_with_its_policy(tmp_path, monkeypatch):
    from nbsim_cli.app import cli

    monkeypatch.chdir(tmp_path)
    args = ["run", *ARGV.split(), "-nonoise", "-nopgm", "-noprogress"]
    ok = CliRunner().invoke(cli, [*args, "--phi-policy", "c-parity", "--c-threads=2"])
    assert ok.exit_code == 0, ok.stderr
    bad = CliRunner().invoke(cli, [*args, "--c-threads", "2"])
    assert bad.exit_code == 2 and "--c-threads" in bad.stderr
    assert "--c-threads" in CliRunner().invoke(cli, ["run", "--help"]).output


def test_policies_differ_only_at_zero_steps():
    config = config_from_argv(ARGV.split())
    m = build_model(config)
    spec = render(m, select_physics(config, phi_policy="spec")).image
    cpar = render(m, select_physics(config, phi_policy="c-parity")).image
    assert not torch.equal(spec, cpar)
    shifted = config_from_argv(ARGV.replace("-phi 0", "-phi 0.5").split())
    m = build_model(shifted)
    assert torch.equal(render(m, select_physics(shifted, phi_policy="spec")).image,
                       render(m, select_physics(shifted, phi_policy="c-parity")).image)
    assert np.isfinite(spec.numpy()).all()
