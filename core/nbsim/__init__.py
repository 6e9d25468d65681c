"""nbsim: the nanoBragg diffraction simulator in PyTorch.

The package renders detector images of nanocrystals exactly as the reference C program does
(``specs/``), differentiably, on CPU or GPU, with plugins for the phi policy, the lattice
factor, polarization and tracing.

The public names below are imported on first use, so that ``import nbsim`` (and with it
``nbsim --version``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "BeamConfig": "nbsim.model.config", "CrystalConfig": "nbsim.model.config", "DetectorConfig": "nbsim.model.config",
    "OutputConfig": "nbsim.model.config", "RunConfig": "nbsim.model.config", "SamplingConfig": "nbsim.model.config",
    "InputError": "nbsim.errors", "NbsimError": "nbsim.errors", "PluginError": "nbsim.errors",
    "UsageError": "nbsim.errors",
    "hookimpl": "nbsim.plugins.hookspecs",
    "build_model": "nbsim.model.build",
    "config_from_argv": "nbsim.setup", "StructureInputs": "nbsim.setup", "SpectrumInputs": "nbsim.setup",
    "Spectrum": "nbsim.model.config",
    "select_physics": "nbsim.plugins.selection",
    "Simulation": "nbsim.simulation", "simulate": "nbsim.simulation",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
