"""Every golden case of the reference program, compared as ../shared/golden/README.md says.

Each case runs through the ``nbsim run`` command object in a fresh directory, under both phi
policies: ``spec`` against ``float.spec.bin`` where it exists (else against every output of
the C run), ``c-parity`` with the case's thread count against the C run.  A few cases also
run as a subprocess of the installed console script to cover the real entry point.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import golden as G

CASES = G.case_names() if (G.GOLDEN / "cases").is_dir() else []
SUBPROCESS_CASES = ["cubic_default_F", "mat_hexagonal", "phi_osc_from_zero_2threads", "noise_seeded"]


def test_golden_cases_present(golden_dir):
    assert len(CASES) >= 50


@pytest.mark.golden
@pytest.mark.parametrize("policy", ["spec", "c-parity"])
@pytest.mark.parametrize("name", CASES)
def test_golden(name, policy, tmp_path):
    proc = G.run_case(name, tmp_path, policy=policy, in_process=True)
    result = G.compare(name, tmp_path, proc, policy=policy, dtype="float64")
    assert result.ok, f"{name}: {result}"


@pytest.mark.golden
@pytest.mark.parametrize("name", CASES)
def test_golden_numba_engine(name, tmp_path):
    """The compiled CPU loop on every case it applies to (c-parity policy); on the others,
    ``--engine numba`` is a one-line error giving the reason."""
    proc = G.run_case(name, tmp_path, policy="c-parity", in_process=True, extra=("--engine", "numba"))
    if proc.returncode == 2 and proc.stderr.startswith("nbsim: error: --engine numba: "):
        reason = proc.stderr.strip().split(": ", 3)[-1]
        assert len(proc.stderr.strip().splitlines()) == 1 and NUMBA_REFUSAL.fullmatch(reason), proc.stderr
        assert not (tmp_path / "float.bin").exists()
        return
    result = G.compare(name, tmp_path, proc, policy="c-parity", dtype="float64")
    assert result.ok, f"{name}: {result}"


#: the reasons the golden cases the numba loop does not cover give (nbsim.engines.numba_engine.refusal)
NUMBA_REFUSAL = re.compile(r"its loop has no -interpolate with -oversample_thick/_polar/_omega")


@pytest.mark.golden
@pytest.mark.parametrize("name", [n for n in CASES if not (G.GOLDEN / "cases" / n / "float.spec.bin").exists()])
def test_policies_agree_without_zero_phi_steps(name, tmp_path):
    """Cases with no float.spec.bin give identical images under both policies."""
    images = []
    for policy in ("spec", "c-parity"):
        work = tmp_path / policy
        proc = G.run_case(name, work, policy=policy, in_process=True)
        assert proc.returncode == 0, proc.stderr
        images.append(np.fromfile(work / "float.bin", dtype="<f4"))
    assert np.array_equal(images[0], images[1])


@pytest.mark.golden
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_golden_installed_command(name, tmp_path):
    policy = "c-parity" if "2threads" in name else "spec"
    proc = G.run_case(name, tmp_path, policy=policy, in_process=False)
    result = G.compare(name, tmp_path, proc, policy=policy, dtype="float64")
    assert result.ok, f"{name}: {result}"
