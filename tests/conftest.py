"""Shared fixtures: the golden data location, a plugin system without entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import golden  # noqa: E402


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    root = golden.GOLDEN
    if not (root / "cases").is_dir():
        pytest.fail(f"golden data not found at {root} (set NBSIM_GOLDEN)")
    return root
