"""The plugins the core's tests render with, given as objects (not found through entry points):
what else is installed in the environment, or whether these are installed at all, does not
change a test's outcome."""

from __future__ import annotations

import nbsim_lattice_sphere
import nbsim_phi_c_parity
import nbsim_phi_spec
import nbsim_response_readout
from nbsim.plugins.system import PluginSystem, build_system

TEST_PLUGINS = (nbsim_phi_spec.plugin, nbsim_phi_c_parity.plugin, nbsim_lattice_sphere.plugin, nbsim_response_readout.plugin)


def plugin_system(*more) -> PluginSystem:
    """The built-ins, TEST_PLUGINS and ``more`` plugin objects, no entry points."""
    return build_system(entry_points=False, extra=(*TEST_PLUGINS, *more))
