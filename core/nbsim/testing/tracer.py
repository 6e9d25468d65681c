"""Contract suite for tracer plugins (objects implementing the ``nbsim_trace`` hook).

The suite renders a tiny image with the tracer registered and two traced pixels, and checks
that the tracer receives the three stages in order, works in float32 and float64 (and CUDA
when available), never modifies the tensors it is given, leaves the image unchanged and
behaves the same way twice.
"""

from __future__ import annotations

import pytest
import torch

from nbsim.plugins.hookspecs import hookimpl
from nbsim.testing.base import DEVICES, DTYPES, ContractSuite

ARGV = "-cell 70 80 90 75 85 95 -default_F 100 -lambda 1.2 -N 4 -distance 60 -detpixels 4 -pixel 0.5 -oversample 2"
TRACED = [(1, 2), (3, 0)]


class _Before:
    """Runs before every other implementation: keeps a copy of what the tracer will get."""

    plugin_name = "contract-before"

    def __init__(self):
        self.stages, self.copies = [], []

    @hookimpl(tryfirst=True)
    def nbsim_trace(self, stage, chunk, tensors):
        self.stages.append(stage)
        self.copies.append({k: v.clone() for k, v in tensors.items() if isinstance(v, torch.Tensor)})


class _After:
    """Runs after every other implementation: sees the tensors as the tracer left them."""

    plugin_name = "contract-after"

    def __init__(self):
        self.seen = []

    @hookimpl(trylast=True)
    def nbsim_trace(self, stage, chunk, tensors):
        self.seen.append({k: v for k, v in tensors.items() if isinstance(v, torch.Tensor)})


def traced_render(tracer, dtype=torch.float64, device="cpu", extra=()):
    from nbsim.engines.pipeline import render
    from nbsim.model.build import build_model
    from nbsim.plugins.selection import select_physics
    from nbsim.plugins.system import build_system
    from nbsim.setup import config_from_argv

    system = build_system(extra=(tracer, *extra))
    config = config_from_argv(ARGV.split())
    physics = select_physics(config, system=system)
    caller = system.manager.hook.nbsim_trace
    model = build_model(config, device=device, dtype=dtype)
    traced = render(model, physics, traced=TRACED,
                    trace=lambda stage, chunk, tensors: caller(stage=stage, chunk=chunk, tensors=tensors))
    return traced.image, render(model, physics).image


class BaseTracerTests(ContractSuite):
    def test_implements_the_trace_hook(self, implementation):
        assert callable(getattr(implementation, "nbsim_trace", None))

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_tracing_leaves_the_image_unchanged(self, implementation, dtype, device, capsys):
        traced, plain = traced_render(implementation, dtype, device)
        assert torch.equal(traced, plain)

    def test_receives_stages_in_order_and_does_not_modify_them(self, implementation, capsys):
        before, after = _Before(), _After()
        traced_render(implementation, extra=(before, after))
        assert before.stages == ["geometry", "scattering", "pixel"]
        for copy, seen in zip(before.copies, after.seen):
            for key, value in copy.items():
                assert torch.equal(value, seen[key]), f"the tracer modified {key!r}"

    def test_deterministic(self, implementation, capsys):
        first = traced_render(implementation)[0]
        out1 = capsys.readouterr().out
        second = traced_render(implementation)[0]
        assert torch.equal(first, second) and capsys.readouterr().out == out1
