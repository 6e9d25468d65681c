"""Choosing the physics of a render (phi policy, lattice factor, polarization model) and its device.

The registered objects come from the plugin system (``nbsim.plugins.system``); this module turns the
configuration and the user's choices into a :class:`Physics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from nbsim.errors import PluginError, UsageError
from nbsim.model.config import RunConfig
from nbsim.plugins.system import PluginSystem, load_plugins
from nbsim.protocols import ImageTransform, LatticeFactor, PhiPolicy, PolarizationModel


@attrs.frozen
class Physics:
    """The implementations selected for a render."""

    policy: PhiPolicy
    lattice: LatticeFactor
    polarization: PolarizationModel
    #: image transforms run on the rendered panels, in order (nbsim.engines.image_stage)
    image_stage: tuple[ImageTransform, ...] = attrs.field(default=(), converter=tuple)



PHI_SPEC_DISTRIBUTION = "nbsim-phi-spec"
#: the distributions of the phi policies nbsim ships, for "install ..." hints
POLICY_DISTRIBUTIONS = {"spec": PHI_SPEC_DISTRIBUTION, "c-parity": "nbsim-phi-c-parity"}


def select_physics(
    config: RunConfig,
    *,
    phi_policy: str = "spec",
    lattice: str | None = None,
    polarization: str | None = None,
    options: Mapping[str, Any] | None = None,
    image_stage: Sequence[str] = (),
    system: PluginSystem | None = None,
) -> Physics:
    """The phi policy, lattice factor, polarization model and image stage for ``config``.

    Without ``lattice`` the nanoBragg shape flag decides (square, round, gauss, tophat);
    without ``polarization`` ``-nopolar`` selects ``none`` and anything else ``kahn`` (with
    ``-oversample_polar`` the reference computes Kahn's factor even under ``-nopolar``).
    ``options`` are plugin options (``{"threads": 2}``, by the keyword each was registered with)
    passed to the ``configure`` of the policy and of each image transform; ``image_stage``
    names the image transforms to run on the rendered panels, in order (``nbsim.engines.image_stage``).
    """
    system = system or load_plugins()
    if len(system.phi_policies) == 0:
        raise PluginError(
            f"no phi policy is installed: install {PHI_SPEC_DISTRIBUTION} "
            "(pip install -e plugins/phi-spec from the nbsim source tree)"
        )
    if phi_policy not in system.phi_policies and phi_policy in POLICY_DISTRIBUTIONS:
        raise PluginError(
            f"phi policy {phi_policy!r} is not installed (installed: {', '.join(system.phi_policies.names())}); "
            f"install {POLICY_DISTRIBUTIONS[phi_policy]}"
        )
    options = dict(options or {})

    policy = system.phi_policies.get(phi_policy).configure(options)
    if lattice is None:
        lattice = config.crystal.shape
    if polarization is None:
        s = config.sampling
        polarization = "none" if config.beam.nopolar and not s.oversample_polar else "kahn"
    return Physics(
        policy=policy,
        lattice=system.lattice_factors.get(lattice),
        polarization=system.polarization_models.get(polarization),
        image_stage=tuple(system.image_transforms.get(name).configure(options) for name in image_stage),
    )


def check_device(name: str | torch.device, option: str = "--device") -> torch.device:
    """The torch device ``name``, or a usage error naming ``option`` and saying why it cannot be used here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"{option}: unknown device {name!r} (examples: cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{option} {name}: CUDA is not available (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"{option} {name}: nbsim runs on cpu and cuda devices")
    return device


#: the precisions a render runs in, by the names the command line uses
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def check_dtype(value: str | torch.dtype, option: str = "--dtype") -> torch.dtype:
    """torch.float64 or torch.float32 from itself or its name, or a usage error naming ``option``."""
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value in DTYPES:
        return DTYPES[value]
    raise UsageError(f"{option}: expected float64 or float32, got {value!r}")
