"""Shared fixtures: the golden data location, a plugin system without entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import golden  # noqa: E402
import plugin_set  # noqa: E402
from nbsim.plugins.system import plugins_in_use  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def in_test_plugins():
    """The process-wide plugin system of every test (``plugin_set``): no entry points."""
    with plugins_in_use(plugin_set.plugin_system()) as system:
        yield system


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    root = golden.GOLDEN
    if not (root / "cases").is_dir():
        pytest.fail(f"golden data not found at {root} (set NBSIM_GOLDEN)")
    return root
