"""The detector's response: a chain of responses from the ideal photon image to the recorded one.

``--response NAME[:key=value,...]`` (repeatable) names the steps in order. The chain runs on
the float image of every panel in float32 (its values as the float file and the reference's
noise image hold them; the recorded image is written as 16-bit integers or float32), each
random step with a counter-based generator of its own: seeded by its ``seed=`` option, else
by (the run's noise seed, the step's position), so that the result depends only on the command
line. Pixels outside the ROI are 0 afterwards, as in the noise image. Without ``--response``
nothing here runs and the noise image is nanoBragg's; the chain [poisson, pedestal:adu=40,
saturation] gives the same file (``specs/responses.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nbsim.errors import UsageError
from nbsim.outputs.image_files import roi_mask
from nbsim.physics.counter_random import CounterRandom
from nbsim.protocols import DetectorResponse, ResponseContext

FLAG = "--response"


def parse(spec: str) -> tuple[str, dict[str, str]]:
    """``"psf-gauss:fwhm=172,radius=8"`` as ("psf-gauss", {"fwhm": "172", "radius": "8"})."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise UsageError(f"{FLAG} {spec}: expected key=value options after the name, got {item!r}")
        options[key.strip()] = value.strip()
    return name.strip(), options


def select_chain(system, specs: Sequence[str]) -> tuple[DetectorResponse, ...]:
    """The configured responses of ``specs``, in order (a usage error names a bad one)."""
    registry = system.detector_responses
    chain = []
    for spec in specs:
        name, options = parse(spec)
        if name not in registry:
            raise UsageError(f"{FLAG} {spec}: no detector response {name!r} "
                             f"(installed: {', '.join(sorted(registry.names())) or 'none'})")
        try:
            chain.append(registry.get(name).configure(options))
        except ValueError as exc:
            raise UsageError(f"{FLAG} {spec}: {exc}") from None
    return tuple(chain)


def step_seed(run_seed: int, step: int, response: DetectorResponse) -> int:
    """The seed of a random step: its own ``seed=``, else one drawn from (run seed, position)."""
    own = getattr(response, "seed", None)
    if own is not None:
        return int(own)
    return int(np.random.SeedSequence([abs(int(run_seed)), step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def apply_chain(chain: Sequence[DetectorResponse], image32: np.ndarray, config, model) -> tuple[np.ndarray, list[str]]:
    """The recorded image (float32, ``image32``'s shape) and the chain's remarks."""
    d = config.detector
    image = torch.from_numpy(np.asarray(image32, dtype=np.float32)).reshape(d.n_panels, d.spixels, d.fpixels)
    notes: list[str] = []
    with torch.no_grad():
        for step, response in enumerate(chain):
            random = CounterRandom(step_seed(config.output.seed, step, response)) if response.random else None
            context = ResponseContext(pixel_size=model.panels.pixel_size.cpu(), random=random, config=config,
                                      notes=notes)
            out = response.apply(image, context)
            if out.shape != image.shape:
                raise ValueError(f"detector response {response.name!r} returned shape {tuple(out.shape)} "
                                 f"for an image of shape {tuple(image.shape)}")
            image = out
    recorded = image.numpy().reshape(image32.shape)
    if not recorded.flags.writeable or np.may_share_memory(recorded, image32):  # a step that returned its input
        recorded = recorded.copy()
    recorded[~roi_mask(recorded.shape, d.roi)] = 0.0
    return recorded, notes


def recorded_pixels(recorded: np.ndarray) -> np.ndarray:
    """16-bit pixels of a recorded image: truncated, 0 to 65535, NaN as 0 (as the noise image's)."""
    values = np.nan_to_num(recorded, nan=0.0, posinf=65535.0, neginf=0.0)
    return np.trunc(np.clip(values, 0.0, 65535.0)).astype(np.uint16)
