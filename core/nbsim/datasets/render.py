"""One process, set up once, rendering image after image of a dataset.

The plugin system, the physics, the device and the memory budget are chosen once, for the
dataset's first configuration (every image of a dataset shares its physics: only the
orientation, seeds, wavelength or crystal size change); the CPU loop compiles on the first
image and stays compiled.  Each image is then exactly what ``nbsim run`` renders for its
configuration (same model, same engine rule, same noise generator), with one difference in the
rule: ``auto`` weighs numba's one-time loading against the whole dataset's work, not one image's
(:func:`dataset_engine`); where that makes it numba, the manifest's flags to make an image again
say ``--engine numba``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs
import numpy as np
import torch

from nbsim.engines import batch, budget
from nbsim.engines import choice as engines
from nbsim.engines.choice import EngineError
from nbsim.engines.pipeline import render
from nbsim.errors import UsageError
from nbsim.model.build import Model, build_model
from nbsim.model.config import RunConfig
from nbsim.outputs import image_files, response
from nbsim.outputs.noise import noise_counts
from nbsim.plugins.selection import check_device, check_dtype, select_physics
from nbsim.plugins.system import load_plugins


@attrs.frozen(eq=False)
class Image:
    """One rendered image of a dataset and what its files need."""

    config: RunConfig
    model: Model
    photons: np.ndarray  # float32, the detector's image shape: the float image
    #: uint16, what the detector records: the noise image (Poisson photons + ADC offset), or the
    #: result of the --response chain; None with -nonoise and no chain
    counts: np.ndarray | None


def dataset_engine(first: RunConfig, physics, engine: str, images: int, *, device, dtype) -> str:
    """The engine of a dataset of ``images`` images like ``first``: the one asked for; for
    ``auto``, numba for every image where auto takes numba for the dataset's whole work (its
    code loads once for all the images: 30 stills of P1, each below numba's threshold, took 23%
    less time than on the tensor engine), else ``auto``, image by image."""
    if engine != "auto" or images < 2:
        return engine
    model = build_model(first, device=device, dtype=dtype)
    work = engines.sub_evaluations(model, model.rendered.shape[0]) * images
    return "numba" if engines.choose("auto", model, physics, work).name == "numba" else "auto"


class Renderer:
    """Renders configurations that share the physics of ``first`` (see the module docstring),
    for a dataset of ``images`` images."""

    def __init__(self, first: RunConfig, options, images: int = 1):
        self.device = check_device(options.device)
        self.dtype = check_dtype(options.dtype)
        self.working_memory = budget.check(first, options.max_memory)
        system = load_plugins()
        self.physics = select_physics(first, phi_policy=options.phi_policy, lattice=options.lattice,
                                      polarization=options.polarization, options=options.plugin_options,
                                      image_stage=options.image_stage, system=system)
        self.chain = response.select_chain(system, options.responses)
        #: the engine every image renders with (``auto``: chosen image by image)
        self.engine = dataset_engine(first, self.physics, options.engine, images, device=self.device, dtype=self.dtype)
        self.options = attrs.evolve(options, engine=self.engine)
        #: images rendered together at most (``--batch``; 1: one at a time)
        self.batch_limit = max(1, options.batch or batch.MAX_IMAGES)

    def image(self, config: RunConfig) -> Image:
        return next(self.images([config]))

    def images(self, configs: Iterable[RunConfig]) -> Iterator[Image]:
        """The image of each configuration, in order.  Consecutive images that differ only in
        orientation and render on the tensor engine (a GPU; small datasets on a CPU) are rendered
        together, as many at a time as memory allows (:mod:`nbsim.engines.batch`), each the
        image it would be alone."""
        waiting: list[Model] = []
        for config in configs:
            model = build_model(config, device=self.device, dtype=self.dtype)
            choice = self._engine(model)
            if self.batch_limit > 1 and batch.refusal(model, self.physics, choice.name) is None:
                if waiting and (not batch.together(waiting[0], model, self.physics) or len(waiting) >= self.batch_limit):
                    yield from self._batch(waiting)
                if not waiting:
                    self.batch_limit = min(self.batch_limit, batch.images_per_batch(model, self.working_memory))
                waiting.append(model)
                continue
            yield from self._batch(waiting)
            with torch.no_grad():
                result = render(model, self.physics, max_memory=self.working_memory, engine=choice)
            yield self._recorded(model, result.image)
        yield from self._batch(waiting)

    def _engine(self, model: Model) -> engines.Choice:
        try:
            return engines.choose(self.options.engine, model, self.physics,
                                  engines.sub_evaluations(model, model.rendered.shape[0]))
        except EngineError as exc:
            raise UsageError(f"--engine {exc.name}: {exc.reason}") from None

    def _batch(self, waiting: list[Model]) -> Iterator[Image]:
        """Render the ``waiting`` images together and empty the list."""
        if not waiting:
            return
        models = list(waiting)
        waiting.clear()
        if len(models) > 1:
            images = batch.render_batch(models, self.physics, max_memory=self.working_memory)
        else:
            with torch.no_grad():
                images = [render(models[0], self.physics, max_memory=self.working_memory, engine="tensor").image]
        for model, image in zip(models, images):
            yield self._recorded(model, image)

    def _recorded(self, model: Model, image) -> Image:
        """The dataset's image of ``model``'s render: photons, and what the detector records."""
        config = model.config
        photons = image.to(torch.float32).cpu().numpy()
        counts = None
        if self.chain:  # the detector's response gives what is recorded
            counts = response.recorded_pixels(response.apply_chain(self.chain, photons, config, model)[0])
        elif config.output.noisefile is not None:
            poisson = noise_counts(photons, config, method=self.options.noise_rng)
            counts = image_files.noise_pixels(poisson, config.detector.roi, config.output.adc_offset)[0]
        return Image(config=config, model=model, photons=photons, counts=counts)
