"""The plugin system: loading, registries, failures, hooks documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from nbsim import hookspecs
from nbsim.api import select_physics
from nbsim.config import RunConfig
from nbsim.errors import PluginError
from nbsim.plugins import build_system
from nbsim.registry import Registry

CONFIG = RunConfig.from_nanobragg_argv("-cell 100 -default_F 1 -detpixels 4".split())


class Named:
    def __init__(self, name):
        self.name = name


def test_registry_refuses_duplicates_and_suggests_names():
    reg = Registry("phi policy")
    reg.register(Named("spec"), owner="a")
    with pytest.raises(PluginError, match="registered twice .*a.* and b"):
        reg.register(Named("spec"), owner="b")
    with pytest.raises(PluginError, match=r"installed: spec\); did you mean 'spec'"):
        reg.get("spex")


def test_builtins_register_through_hooks_without_entry_points():
    system = build_system(entry_points=False)
    assert system.lattice_factors.names() == ["gauss", "round", "square", "tophat"]
    assert system.polarization_models.names() == ["kahn", "none"]
    assert system.lattice_factors.owner("square") == "nbsim.BuiltinLatticePlugin"


def test_no_phi_policy_names_the_package_to_install():
    system = build_system(entry_points=False)
    with pytest.raises(PluginError, match="nbsim-phi-spec"):
        select_physics(CONFIG, system=system)


def test_missing_shipped_policy_names_its_package(monkeypatch):
    monkeypatch.setenv("NBSIM_DISABLE_PLUGINS", "phi-c-parity")
    system = build_system()
    with pytest.raises(PluginError, match="install nbsim-phi-c-parity"):
        select_physics(CONFIG, phi_policy="c-parity", system=system)
    assert select_physics(CONFIG, system=system).policy.name == "spec"


def test_a_broken_plugin_is_reported_and_the_rest_work(monkeypatch):
    from nbsim import plugins

    real = plugins.metadata.entry_points

    class Broken:
        name = "broken"
        dist = None

        def load(self):
            raise ImportError("no module named 'missing_dependency'")

    def fake(group):
        return list(real(group=group)) + [Broken()]

    monkeypatch.setattr(plugins.metadata, "entry_points", fake)
    system = build_system()
    assert system.failures == [("broken", "ImportError: no module named 'missing_dependency'")]
    assert "spec" in system.phi_policies


def test_in_process_policy_fixture():
    """Core tests can register a policy without entry points."""
    from nbsim.hookspecs import hookimpl

    class Identity:
        name = "identity"
        row_blocks = 1

        def configure(self, options):
            return self

        def orientations(self, base, phi, spindle, passes):
            return base.expand(1, phi.shape[0], 3, 3)

    class Provider:
        plugin_name = "in-test"

        @hookimpl
        def nbsim_register_phi_policies(self, register):
            register(Identity())

    system = build_system(entry_points=False, extra=(Provider(),))
    assert select_physics(CONFIG, phi_policy="identity", system=system).policy.name == "identity"


HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("nbsim_")]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"{hook}\({re.escape(params)}\)", docs), f"{hook}({params}) missing from docs/plugins.md"
    assert getattr(hookspecs, hook).__doc__
