"""Every golden case of the reference program, compared as ../shared/golden/README.md says.

Each case runs through the ``nbsim run`` command object in a fresh directory; a few also run
as a subprocess of the installed console script to cover the real entry point.
"""

from __future__ import annotations

import pytest

import golden_compare as G

CASES = G.case_names() if (G.GOLDEN / "cases").is_dir() else []
SUBPROCESS_CASES = ["cubic_default_F", "mat_hexagonal", "phi_osc_from_zero", "noise_seeded"]


def test_golden_cases_present(golden_dir):
    assert len(CASES) >= 50


@pytest.mark.golden
@pytest.mark.parametrize("name", CASES)
def test_golden_spec(name, tmp_path):
    proc = G.run_case(name, tmp_path, policy="spec", in_process=True)
    result = G.compare(name, tmp_path, proc, policy="spec", dtype="float64")
    assert result.ok, f"{name}: {result}"


@pytest.mark.golden
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_golden_installed_command(name, tmp_path):
    proc = G.run_case(name, tmp_path, policy="spec", in_process=False)
    result = G.compare(name, tmp_path, proc, policy="spec", dtype="float64")
    assert result.ok, f"{name}: {result}"
