"""A differentiable simulation for scientists: parameters as tensors, images as tensors.

>>> sim = Simulation.from_argv("-cell 70 80 90 75 85 95 -default_F 100 -N 5 -detpixels 64".split())
>>> params = sim.parameters("cell", "distance")          # tensors that require grad
>>> image = sim.image(params)                             # (64, 64), differentiable
>>> image.sum().backward()                                # params["cell"].grad, params["distance"].grad

Parameter names and units: ``nbsim.model.build.PARAMETERS`` (``docs/python-api.md``).  Rendering
with gradients recomputes each chunk during the backward pass (checkpointing), so memory
stays bounded on large detectors.  A parameter the configuration does not use gets a zero
gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from nbsim.engines.budget import parse_size
from nbsim.engines.pipeline import DEFAULT_MAX_MEMORY, render
from nbsim.errors import UsageError
from nbsim.model.build import PARAMETERS, Model, build_model, initial_value
from nbsim.model.config import RunConfig
from nbsim.plugins.selection import check_device, check_dtype, select_physics
from nbsim.setup import config_from_argv


class Simulation:
    """A configuration, the selected physics, a device and a dtype.

    The arguments are checked here, with the command line's messages naming the keyword:
    ``device`` ("cpu", "cuda:1" or a torch.device), ``dtype`` (torch.float64/float32 or their
    names), ``max_memory`` (bytes per chunk, or a size such as "1G"), the plugin names;
    ``image_stage`` names the image transforms run on the rendered panels (``nbsim.engines.image_stage``).
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        phi_policy: str = "spec",
        lattice: str | None = None,
        polarization: str | None = None,
        policy_options: Mapping[str, Any] | None = None,
        image_stage: Sequence[str] = (),
        max_memory: int | str = DEFAULT_MAX_MEMORY,
    ):
        if not isinstance(config, RunConfig):
            raise UsageError(f"config: expected a RunConfig (see Simulation.from_argv), got {type(config).__name__}")
        self.config = config
        self.device = check_device(device, "device")
        self.dtype = check_dtype(dtype, "dtype")
        self.max_memory = parse_size(max_memory, "max_memory")
        if isinstance(image_stage, str):
            raise UsageError(f"image_stage: expected a sequence of transform names, got the string {image_stage!r}")
        self.physics = select_physics(config, phi_policy=phi_policy, lattice=lattice, polarization=polarization,
                                      options=policy_options, image_stage=image_stage)

    @classmethod
    def from_argv(cls, argv: Sequence[str], **options) -> "Simulation":
        """A simulation of a nanoBragg command line (flags only, no program name)."""
        return cls(config_from_argv(list(argv)), **options)

    @property
    def shape(self) -> tuple[int, ...]:
        """(spixels, fpixels), or (panels, spixels, fpixels) for a detector given as panels."""
        return self.config.detector.image_shape

    def initial(self, name: str) -> Tensor:
        """The configuration's value of parameter ``name`` as a tensor (SI units)."""
        return torch.as_tensor(initial_value(self.config, name), dtype=self.dtype, device=self.device)

    def parameters(self, *names: str, requires_grad: bool = True) -> dict[str, Tensor]:
        """Fresh leaf tensors holding the configuration's values of ``names``."""
        unknown = [n for n in names if n not in PARAMETERS]
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}")
        return {n: self.initial(n).clone().requires_grad_(requires_grad) for n in names}

    def model(self, params: Mapping[str, Tensor] | None = None) -> Model:
        return build_model(self.config, device=self.device, dtype=self.dtype, params=params)

    def image(self, params: Mapping[str, Tensor] | None = None, *, roi: tuple[int, int, int, int] | None = None,
              checkpoint: bool | None = None) -> Tensor:
        """The float image (:attr:`shape`), or its ``roi`` = (xmin, xmax, ymin, ymax) crop (of every panel)."""
        model = self.model(params)
        if roi is None:
            return render(model, self.physics, max_memory=self.max_memory, checkpoint=checkpoint).image
        xmin, xmax, ymin, ymax = roi
        d = self.config.detector
        k = torch.arange(d.n_panels, device=self.device)
        s = torch.arange(ymin, ymax + 1, device=self.device)
        f = torch.arange(xmin, xmax + 1, device=self.device)
        flat = ((k[:, None, None] * d.spixels + s[:, None]) * d.fpixels + f).reshape(-1)
        values = render(model, self.physics, max_memory=self.max_memory, pixels=flat, checkpoint=checkpoint).values
        return values.reshape(*self.shape[:-2], len(s), len(f))

    def pixels(self, pixels: Tensor, params: Mapping[str, Tensor] | None = None, *,
               checkpoint: bool | None = None) -> Tensor:
        """Values of the listed pixels: (N, 2) (slow, fast) indices, (N, 3) (panel, slow, fast), or
        (N,) flat indices (``nbsim.model.panels``)."""
        pixels = torch.as_tensor(pixels, device=self.device)
        d = self.config.detector
        if pixels.dim() == 2:
            panel = pixels[:, 0] if pixels.shape[1] == 3 else torch.zeros_like(pixels[:, 0])
            pixels = (panel * d.spixels + pixels[:, -2]) * d.fpixels + pixels[:, -1]
        model = self.model(params)
        return render(model, self.physics, max_memory=self.max_memory, pixels=pixels, checkpoint=checkpoint).values


def simulate(config: RunConfig, *, params: Mapping[str, Tensor] | None = None, **options) -> Tensor:
    """The float image of ``config`` (``DetectorConfig.image_shape``) as a tensor (one call, no state kept).

    ``options`` are those of :class:`Simulation` (device, dtype, phi_policy, lattice, ...).
    """
    return Simulation(config, **options).image(params)
