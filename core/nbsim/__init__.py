"""nbsim: the nanoBragg diffraction simulator in PyTorch.

The package renders detector images of nanocrystals exactly as the reference C program does
(``specs/``), differentiably, on CPU or GPU, with plugins for the phi policy, the lattice
factor, polarization and tracing.
"""

from nbsim.api import select_physics
from nbsim.config import (
    BeamConfig,
    CrystalConfig,
    DetectorConfig,
    OutputConfig,
    RunConfig,
    SamplingConfig,
)
from nbsim.errors import InputError, NbsimError, PluginError, UsageError
from nbsim.hookspecs import hookimpl
from nbsim.model import build_model
from nbsim.simulation import Simulation, simulate

__version__ = "0.1.0"

__all__ = [
    "BeamConfig", "CrystalConfig", "DetectorConfig", "OutputConfig", "RunConfig", "SamplingConfig",
    "InputError", "NbsimError", "PluginError", "UsageError", "Simulation", "build_model", "hookimpl",
    "select_physics", "simulate", "__version__",
]
