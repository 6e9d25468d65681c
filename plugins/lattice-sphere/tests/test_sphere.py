"""nbsim-lattice-sphere: nbsim's lattice-factor contract suite plus this model's physics."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from nbsim.testing import BaseLatticeFactorTests
from nbsim_lattice_sphere import SphereLattice, sphere_transform


class TestSphereLattice(BaseLatticeFactorTests):
    @pytest.fixture
    def implementation(self):
        return SphereLattice()


def test_peak_is_the_number_of_cells():
    recip = torch.eye(3, dtype=torch.float64) / 50.0
    hkl = torch.tensor([[2.0, -1.0, 3.0]], dtype=torch.float64)
    n = torch.tensor([4.0, 5.0, 6.0], dtype=torch.float64)
    out = SphereLattice().evaluate(hkl, hkl, n, torch.tensor(1.0, dtype=torch.float64), recip)
    assert out.item() == pytest.approx(120.0)


def test_first_zero_at_the_sphere_radius():
    a = 50.0
    recip = torch.eye(3, dtype=torch.float64) / a
    n = torch.tensor([10.0, 10.0, 10.0], dtype=torch.float64)
    radius = (3 * 1000 * a**3 / (4 * math.pi)) ** (1 / 3)
    dh = 4.493409457909064 / (2 * math.pi * radius) * a
    hkl = torch.tensor([[dh, 0.0, 0.0]], dtype=torch.float64)
    out = SphereLattice().evaluate(hkl, torch.zeros_like(hkl), n, torch.tensor(1.0, dtype=torch.float64), recip)
    assert abs(out.item()) < 1e-9


def test_series_and_closed_form_agree_at_the_switch():
    x = 0.05
    closed = 3 * (math.sin(x) - x * math.cos(x)) / x**3
    below = sphere_transform(torch.tensor([(x * (1 - 1e-12)) ** 2], dtype=torch.float64))
    assert below.item() == pytest.approx(closed, rel=1e-11)


def test_selectable_from_the_command_line(tmp_path, monkeypatch):
    from nbsim_cli.app import cli

    monkeypatch.chdir(tmp_path)
    argv = ["run", "-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "5", "-lambda", "6.2",
            "-detpixels", "32", "-nonoise", "-nopgm", "-noprogress", "--lattice", "sphere", "--provenance", "p.json"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.stderr
    assert '"lattice_factor": "sphere"' in (tmp_path / "p.json").read_text()
