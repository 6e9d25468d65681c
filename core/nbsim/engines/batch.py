"""Images that differ only in the crystal's orientation, rendered together.

The frames of a rotation series (their phi) and stills (their misset and mosaic domains)
share everything else: detector, beam, sources, and so every pixel's pass quantities.  Rendered
together, those are computed once per chunk for the whole batch, and where one image's
orientations fit in one block, the orientation sums of several images are evaluated in one
go (:func:`nbsim.engines.tensor_kernel.batch_plan`): few large operations instead of many
small ones, which is what a GPU needs.  Each image is still summed block by block exactly as
its own render sums it, so every image of a batch is the image ``nbsim run`` gives for its
configuration with the tensor engine.

A batch renders with the tensor kernel's common case: a phi policy with ``shared_tables``, no
running products (``-oversample_thick/_polar/_omega``), no ``-interpolate``, no gradients.
Images whose lattice factor reads the reciprocal vectors (``reads_reciprocal``) share a batch
only when those are the same (a series; not stills, whose misset turns them).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from nbsim.engines import image_stage
from nbsim.engines.pipeline import DEFAULT_MAX_MEMORY, pass_order, staged_image
from nbsim.engines.tensor_kernel import PassOrientations, batch_plan, render_pixels, running_products
from nbsim.model.build import Model
from nbsim.model.config import RunConfig
from nbsim.plugins.selection import Physics

#: images a batch holds at most: beyond this, a GPU's launches are already amortised
MAX_IMAGES = 64
#: on a CPU, the bytes of a batch's float images at most: 30 stills of P1 (1024 x 1024, 2 cores)
#: took 6.5% less time in batches of 4 (32 MiB) than one at a time, but batches of 8 took 12%
#: more than batches of 4, and batches of 32 (a quarter of the default budget) 7.5% more than one
#: at a time with 2.3x the memory: a CPU's caches, not launches, set the size there
#: (reports/benchmarks/stills_throughput.md)
CPU_BATCH_BYTES = 32 << 20


def refusal(m: Model, physics: Physics, engine: str) -> str | None:
    """Why ``m`` cannot be rendered in a batch, or None when it can."""
    if engine != "tensor":
        return f"the {engine} engine renders one image at a time"
    if not PassOrientations.shared(physics):
        return "the phi policy offers no shared_tables"
    if running_products(m):
        return "-oversample_thick/_polar/_omega sum running products"
    if m.config.crystal.interpolate:
        return "-interpolate"
    return None


def _orientation_free(config: RunConfig) -> RunConfig:
    """``config`` without what a batch's images may differ in: the crystal's orientation
    (misset, mosaic domains' seed), the starting phi, and the outputs (noise seed, files)."""
    crystal = attrs.evolve(config.crystal, misset=None, misset_random=False, misset_seed=0, mosaic_seed=0)
    return attrs.evolve(config, crystal=crystal, sampling=attrs.evolve(config.sampling, phi0=0.0),
                        output=type(config.output)(), argv=(), warnings=(), setup_notices=())


def together(first: Model, other: Model, physics: Physics) -> bool:
    """Whether ``other`` may join a batch whose first image is ``first``: the same everything
    but orientation (arrays compared by identity: a dataset's images share them)."""
    a, b = first.config, other.config
    same_arrays = (a.beam.source_file is b.beam.source_file and a.beam.spectrum is b.beam.spectrum
                   and a.detector.mask is b.detector.mask
                   and a.crystal.structure_factors is b.crystal.structure_factors)
    if not same_arrays or _orientation_free(a) != _orientation_free(b):
        return False
    if (first.mosaic is None) != (other.mosaic is None) or first.device != other.device:
        return False
    return not physics.lattice.reads_reciprocal or torch.equal(first.lattice.reciprocal, other.lattice.reciprocal)


def images_per_batch(m: Model, budget_bytes: int) -> int:
    """How many images of ``m``'s size a batch holds: their float images, kept until every
    chunk is done, take at most a quarter of the budget, and on a CPU at most
    :data:`CPU_BATCH_BYTES` (and :data:`MAX_IMAGES` at most)."""
    per_image = 8 * m.panels.pixels
    batch_bytes = int(budget_bytes) // 4
    if m.device.type == "cpu":
        batch_bytes = min(batch_bytes, CPU_BATCH_BYTES)
    return max(1, min(MAX_IMAGES, batch_bytes // per_image))


def render_batch(models: Sequence[Model], physics: Physics, *, max_memory: int = DEFAULT_MAX_MEMORY) -> list[Tensor]:
    """The images of ``models`` (each shaped as its ``Render.image``), rendered together.

    :param models: images that may share a batch (:func:`together` with the first, and
        :func:`refusal` None for it).
    """
    m = models[0]
    batch = tuple(models)
    outputs = m.rendered
    targets = image_stage.needed_pixels(outputs, m.panels, image_stage.halo(physics.image_stage))
    pixels_per_chunk, orientation_chunk, images_per_block = batch_plan(m, max_memory, len(batch))
    order = pass_order(m, physics, pixels_per_chunk)
    chunks = []
    with torch.no_grad():
        for start in range(0, int(targets.shape[0]), pixels_per_chunk):
            values, _, _ = render_pixels(m, targets[start:start + pixels_per_chunk], physics, order,
                                         orientation_chunk=orientation_chunk, batch=batch,
                                         images_per_block=images_per_block)
            chunks.append(values)
        stacked = torch.cat(chunks, dim=1) if chunks else torch.zeros((len(batch), 0), dtype=m.dtype, device=m.device)
        chunks.clear()
        images = []
        for model, values in zip(batch, stacked):
            flat = staged_image(model, physics, [values], targets, outputs)
            images.append(flat.to(model.compute_dtype).reshape(model.config.detector.image_shape))
    return images
