"""Render a whole detector: chunks of pixels, memory budget, pass order, image stage, tracing.

Pixels inside the ROI and not masked are rendered in raster order over the panels, in chunks
whose size comes from the memory budget; each chunk's sub-evaluations are themselves split
over orientations when needed (:func:`nbsim.engines.tensor_kernel.memory_plan`).  The image stage
(:mod:`nbsim.engines.image_stage`) then transforms the whole panels.  Every other pixel is 0.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from nbsim.engines import choice as engines
from nbsim.engines import image_stage
from nbsim.engines.tensor_kernel import (
    PassOrder,
    PassOrientations,
    memory_plan,
    pass_geometry,
    render_pixels,
)
from nbsim.model.build import Model
from nbsim.plugins.selection import Physics

DEFAULT_MAX_MEMORY = 1 << 30


@attrs.frozen(eq=False)
class Render:
    #: (spixels, fpixels), or (panels, spixels, fpixels) for a detector given as panels
    #: (``DetectorConfig.image_shape``); the render's dtype; 0 outside the ROI and in the mask
    image: Tensor
    omega_sum: float  # the reference's solid-angle sum (for its printout)
    #: (h, k, l, h0, k0, l0) of the evaluation that ended tricubic interpolation, if one did
    interpolation_switch: tuple | None = None
    #: values of the requested ``pixels``, in their order (None when the whole detector was asked)
    values: Tensor | None = None
    #: the engine that rendered and why (``nbsim.engines.choice``)
    engine: engines.Choice | None = None


def row_blocks(spixels: int, blocks: int, device=None) -> Tensor:
    """Block of every row under a static OpenMP schedule of ``blocks`` threads."""
    q, r = divmod(spixels, blocks)
    sizes = [q + 1 if t < r else q for t in range(blocks)]
    return torch.repeat_interleave(torch.arange(blocks, device=device), torch.tensor(sizes, device=device))


def pass_order(m: Model, physics: Physics, pixels_per_chunk: int) -> PassOrder:
    """Find the first executed pass of every row block (only ``-dmin`` can skip passes)."""
    blocks = max(1, int(physics.policy.row_blocks))
    block_of_row = row_blocks(m.panels.rows, blocks, m.device)  # the rows of every panel, one after another
    if m.config.sampling.dmin > 0:
        firsts = scanned_first_passes(m, physics, block_of_row, blocks, pixels_per_chunk)
    else:
        firsts = first_passes(m, block_of_row, blocks)
    return PassOrder(block_of_row=block_of_row, block_first=firsts)


def first_passes(m: Model, block_of_row: Tensor, blocks: int) -> Tensor:
    """First pass of every row block (-1 for none) when every pass executes: its first pixel's."""
    # rendered pixels are in raster order and a block is a run of rows: bisect for its bounds
    first_rows = torch.searchsorted(block_of_row, torch.arange(blocks + 1, device=m.device))
    at = torch.searchsorted(m.rendered, first_rows * m.config.detector.fpixels)
    n = m.rendered.shape[0]
    if n == 0:
        return torch.full((blocks,), -1, dtype=torch.int64, device=m.device)
    first = m.rendered[at[:-1].clamp(max=n - 1)]  # clamped where a block renders nothing: dropped below
    return torch.where(at[1:] > at[:-1], first * m.passes_per_pixel, -1)


def scanned_first_passes(m: Model, physics: Physics, block_of_row: Tensor, blocks: int,
                         pixels_per_chunk: int) -> Tensor:
    """First executed pass of every row block (-1 for none), found by evaluating the passes."""
    Q = m.passes_per_pixel
    rendered_block = block_of_row[m.rendered // m.config.detector.fpixels]
    firsts = []
    with torch.no_grad():
        for b in range(blocks):
            pixels = m.rendered[rendered_block == b]
            first = -1
            for start in range(0, pixels.shape[0], pixels_per_chunk):
                idx = pixels[start:start + pixels_per_chunk]
                survive = pass_geometry(m, idx, physics.polarization)["survive"].reshape(idx.shape[0], Q)
                hit = torch.nonzero(survive.reshape(-1))
                if hit.numel():
                    k = int(hit[0])
                    first = int(idx[k // Q]) * Q + k % Q
                    break
            firsts.append(first)
    return torch.tensor(firsts, device=m.device)


def render(
    m: Model,
    physics: Physics,
    *,
    max_memory: int = DEFAULT_MAX_MEMORY,
    pixels: Tensor | None = None,
    checkpoint: bool | None = None,
    engine: str | engines.Choice = "auto",
    progress: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] | None = None,
    trace: Callable[[str, dict, dict], None] | None = None,
    traced: list[tuple[int, int]] | None = None,
) -> Render:
    """Render the pixels of ``m`` (or only ``pixels``).

    :param max_memory: working-memory budget in bytes for one chunk.
    :param pixels: flat indices ((panel*spixels + slow)*fpixels + fast, ``nbsim.model.panels``) to
        render instead of the whole detector;
        ``Render.values`` then holds their values in the order given (0 outside the ROI/mask).
    :param checkpoint: recompute each chunk during the backward pass instead of keeping its
        graph (bounded memory for gradients); default: when gradients are being recorded.
    :param engine: ``"tensor"``, ``"compiled"``, ``"numba"`` or ``"auto"`` (:mod:`nbsim.engines.choice`);
        an engine asked for by name that cannot render this raises :class:`~nbsim.engines.choice.EngineError`.
        Or a :class:`~nbsim.engines.choice.Choice` already made for this render (``nbsim run`` makes it
        before the set-up printout, so that a refusal comes first).
    :param progress: called with (pixels done, pixels total) after each chunk.
    :param notice: told, in a sentence, of a long pause before the first chunk (compiling).
    :param trace: called as ``trace(stage, chunk, tensors)`` for the ``traced`` pixels.
    :param traced: (fast, slow) pixels (of the first panel) to trace; those outside the ROI or
        mask are ignored.
    """
    cfg = m.config
    n_pixels = m.panels.pixels
    targets = m.rendered
    if pixels is not None:
        wanted = torch.as_tensor(pixels, device=m.device).reshape(-1)
        if wanted.numel() and (int(wanted.min()) < 0 or int(wanted.max()) >= n_pixels):
            raise ValueError(f"pixels must be flat indices in 0..{n_pixels - 1}")
        targets = torch.unique(wanted[torch.isin(wanted, m.rendered)])  # sorted: raster order
    outputs = targets
    targets = image_stage.needed_pixels(outputs, m.panels, image_stage.halo(physics.image_stage))
    if checkpoint is None:
        checkpoint = torch.is_grad_enabled()
    total = int(targets.shape[0])
    choice = engine if isinstance(engine, engines.Choice) else \
        engines.choose(engine, m, physics, engines.sub_evaluations(m, total))
    pixels_per_chunk, orientation_chunk = memory_plan(
        m, max_memory, fused=choice.engine.fused(m), per_pass_lattices=not PassOrientations.shared(physics))
    order = pass_order(m, physics, pixels_per_chunk)
    pixels_per_chunk = max(pixels_per_chunk, choice.engine.min_chunk)
    chunk = choice.engine.renderer(m, physics, order, pixels_per_chunk=pixels_per_chunk,
                                   orientation_chunk=orientation_chunk, checkpoint=checkpoint, notice=notice)
    values, omega_sums = [], []
    interpolating, switch = cfg.crystal.interpolate, None
    for start in range(0, total, pixels_per_chunk):
        v, om, new_switch = chunk(targets[start:start + pixels_per_chunk], interpolating)
        if new_switch is not None:
            interpolating, switch = False, new_switch
        values.append(v)
        omega_sums.append(om.sum())  # read back once at the end: no device synchronisation per chunk
        if progress is not None:
            progress(min(start + pixels_per_chunk, total), total)
    omega_sum = sum(torch.stack(omega_sums).tolist()) if omega_sums else 0.0  # left to right: rounding as the chunks came
    flat = staged_image(m, physics, values, targets, outputs)
    if trace is not None and traced:
        _trace_pixels(m, physics, order, traced, trace, None if switch is None else switch.pixel)
    selected = flat[torch.as_tensor(pixels, device=m.device).reshape(-1)] if pixels is not None else None
    flat = flat.to(m.compute_dtype)
    return Render(image=flat.reshape(cfg.detector.image_shape), omega_sum=omega_sum,
                  interpolation_switch=None if switch is None else switch.hkl, values=selected, engine=choice)


def staged_image(m: Model, physics: Physics, values: list[Tensor], targets: Tensor, outputs: Tensor) -> Tensor:
    """The flat image (every pixel, the render's dtype) from the chunks' ``values`` of the
    ``targets`` pixels, through the image stage; 0 but at ``outputs``.  ``values`` is emptied
    as it is used (one image less at the peak)."""
    n_pixels = m.panels.pixels
    if targets.shape[0] == n_pixels:  # every pixel, in raster order
        flat = torch.cat(values)
    else:
        flat = torch.zeros(n_pixels, dtype=m.dtype, device=m.device)
        if values:
            flat = flat.scatter(0, targets, torch.cat(values))
    values.clear()
    flat += m.anchor  # exact zero gradients for unused parameters; in place: one image less at the peak
    if physics.image_stage:
        panels = flat.reshape(m.panels.count, m.panels.spixels, m.panels.fpixels)
        flat = image_stage.apply(physics.image_stage, panels, m).reshape(-1)
        if outputs.shape != targets.shape:  # the halo is rendered for the stage, not output
            kept = torch.zeros(n_pixels, dtype=torch.bool, device=m.device)
            kept[outputs] = True
            flat = torch.where(kept, flat, torch.zeros_like(flat))
    return flat


def _trace_pixels(m, physics, order, traced, trace, switch_pixel) -> None:
    fpixels = m.config.detector.fpixels
    wanted = torch.tensor([s * fpixels + f for f, s in traced], device=m.device)
    idx = wanted[torch.isin(wanted, m.rendered)]
    if idx.numel() == 0:
        return
    stages: dict[str, list] = {}
    with torch.no_grad():
        for one in idx:  # few pixels; each sees interpolation as the render did
            active = switch_pixel is None or int(one) <= switch_pixel
            render_pixels(m, one[None], physics, order, orientation_chunk=m.phisteps * m.domains,
                          interpolating=active, collect=lambda stage, t: stages.setdefault(stage, []).append(t))
    stages = {k: _concat(v) for k, v in stages.items()}
    chunk = {
        "fast": [int(i) % fpixels for i in idx], "slow": [int(i) // fpixels for i in idx],
        "steps": m.steps, "config": m.config, "wavelength": float(m.config.beam.wavelength),
        "format": "printout",
    }
    for stage in ("geometry", "scattering", "pixel"):
        trace(stage, chunk, stages[stage])


#: trace tensors that are the same for every pixel (not joined along the pixel dimension)
_SHARED_TRACE_KEYS = ("incident",)


def _concat(parts: list[dict]) -> dict:
    """Join per-pixel trace records along the pixel dimension."""
    out = {}
    for key, first in parts[0].items():
        if key in _SHARED_TRACE_KEYS:
            out[key] = first
        elif isinstance(first, Tensor) and first.dim() > 0 and key != "lattice":
            out[key] = torch.cat([p[key] for p in parts])
        elif key == "lattice":
            out[key] = torch.cat([p[key] for p in parts]) if first.shape[0] != 1 else first
        else:
            out[key] = first
    return out
