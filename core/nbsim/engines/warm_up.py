"""The numba engine's warm-up render, run in a child process by
:func:`nbsim.engines.numba_engine.compile_apart` (and so kept out of the engine's imports)."""

from __future__ import annotations

import torch

from nbsim.engines.pipeline import render
from nbsim.model.build import build_model
from nbsim.plugins.selection import select_physics
from nbsim.setup import config_from_argv


def warm_cache() -> None:
    """Compile the loop (one small render with the numba engine): every render uses the same
    specialisation, so this one fills the cache for all of them."""
    config = config_from_argv("-cell 50 60 70 90 90 90 -default_F 10 -N 2 -detpixels 4".split())
    with torch.no_grad():
        render(build_model(config), select_physics(config), engine="numba")
