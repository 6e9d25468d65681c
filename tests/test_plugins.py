"""The plugin system: loading, registries, failures, hooks documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from nbsim.errors import PluginError
from nbsim.plugins import hookspecs
from nbsim.plugins.registry import Registry
from nbsim.plugins.selection import select_physics
from nbsim.plugins.system import build_system
from nbsim.protocols import PhiPolicy
from nbsim.setup import config_from_argv

CONFIG = config_from_argv("-cell 100 -default_F 1 -detpixels 4".split())


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
    from nbsim.plugins import system as plugins

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
    from nbsim.plugins.hookspecs import hookimpl

    class Identity(PhiPolicy):  # the protocol's defaults: configure, no shared tables
        name = "identity"
        row_blocks = 1

        def orientations(self, base, phi, spindle, passes):
            return base.expand(1, phi.shape[0], 3, 3)

    class Provider:
        plugin_name = "in-test"

        @hookimpl
        def nbsim_register_phi_policies(self, register):
            register(Identity())

    system = build_system(entry_points=False, extra=(Provider(),))
    assert select_physics(CONFIG, phi_policy="identity", system=system).policy.name == "identity"


@pytest.mark.parametrize("member, problem", [("orientations", "no orientations"), ("row_blocks", "no row_blocks")])
def test_an_object_that_breaks_its_contract_is_refused_by_name(member, problem):
    """Capabilities are members of the protocol: an object without one is refused when it registers."""
    from nbsim.plugins.hookspecs import hookimpl

    members = {"name": "partial", "row_blocks": 1, "configure": lambda self, options: self,
               "orientations": lambda self, base, phi, spindle, passes: base.expand(1, phi.shape[0], 3, 3),
               "shared_tables": lambda self, base, phi, spindle: None}
    del members[member]
    Partial = type("Partial", (), members)

    class Provider:
        plugin_name = "partial-plugin"

        @hookimpl
        def nbsim_register_phi_policies(self, register):
            register(Partial())

    with pytest.raises(PluginError, match=rf"partial-plugin registered phi policy 'partial'.*PhiPolicy: {problem}"):
        build_system(entry_points=False, extra=(Provider(),))


def test_a_typed_capability_of_the_wrong_type_is_refused():
    from nbsim.plugins.hookspecs import hookimpl
    from nbsim.protocols import LatticeFactor

    class Unsure(LatticeFactor):
        name = "unsure"
        needs_nearest = "yes"

        def evaluate(self, hkl, hkl0, n_cells, fudge, reciprocal):
            return hkl[..., 0]

    class Provider:
        @hookimpl
        def nbsim_register_lattice_factors(self, register):
            register(Unsure())

    with pytest.raises(PluginError, match="needs_nearest is 'yes', not a bool"):
        build_system(entry_points=False, extra=(Provider(),))


HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("nbsim_")]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"{hook}\({re.escape(params)}\)", docs), f"{hook}({params}) missing from docs/plugins.md"
    assert getattr(hookspecs, hook).__doc__
