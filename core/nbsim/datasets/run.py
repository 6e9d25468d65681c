"""Render a dataset's images into numbered files, resumably, with its manifest and ground truth.

Image k goes to the template's name with the run of ``#`` replaced by k + 1 (files are
numbered from 1, as DIALS and XDS number images), written whole or not at all
(:mod:`nbsim.io.atomic`).  An image whose file exists is not rendered again: rerunning an
interrupted command finishes it, and since every image depends only on (command line, k),
gives the bytes an uninterrupted run gives.  The manifest (JSON lines) and the experiment
list are written at the end, from the plan and the files (``specs/datasets.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable

import attrs
import numpy as np

from nbsim.datasets.distributed import task_size
from nbsim.datasets.plan import Series, Stills
from nbsim.datasets.render import Image, Renderer
from nbsim.errors import UsageError
from nbsim.io import atomic, cbf, expt, nexus
from nbsim.outputs import image_files
from nbsim.outputs.experiment import simulated_experiment

#: the time in every dataset file's header: files must not depend on when they were made
FIXED_TIME = "2000-01-01T00:00:00.000"
#: image formats by the template's extension: what each file holds
FORMATS = {".cbf": "miniCBF of the noise image", ".img": "SMV of the noise image", ".bin": "float32 photons"}
_NUMBER = re.compile(r"#+")


@attrs.frozen
class Outputs:
    template: str | None = None  # 'name_#####.cbf' (.cbf, .img or .bin)
    nexus: str | None = None  # the NeXus master file; its frames in shards beside it
    shard_size: int = 100  # images per NeXus shard
    manifest: str | None = None  # default: the template's (or master's) name + '.manifest.jsonl'
    export_expt: str | None = None

    @property
    def manifest_path(self) -> str:
        if self.manifest:
            return self.manifest
        if self.template is None:
            return os.path.splitext(self.nexus)[0] + ".manifest.jsonl"
        stem = _NUMBER.split(self.template, maxsplit=1)[0].rstrip("_.-") or "dataset"
        return stem + ".manifest.jsonl"

    def shards(self, count: int) -> list[range]:
        """The images of each NeXus shard, in order."""
        return runs(count, self.shard_size)

    def shard_path(self, j: int, shards: int) -> str:
        """Shard j's file (numbered from 1), beside the master."""
        stem, extension = os.path.splitext(self.nexus)
        return f"{stem}_{j + 1:0{max(5, len(str(shards)))}d}{extension}"


def runs(count: int, size: int) -> list[range]:
    """Images 0 .. count - 1 in consecutive runs of ``size`` (the last may be shorter)."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def check_template(template: str, count: int, flag: str = "--template") -> str:
    runs = _NUMBER.findall(os.path.basename(template))
    if len(runs) != 1:
        raise UsageError(f"{flag}: {template!r} must have one run of '#' for the image number, such as "
                         "'image_#####.cbf'")
    if len(str(count)) > len(runs[0]):
        raise UsageError(f"{flag}: {template!r} numbers at most {10 ** len(runs[0]) - 1} images, and there are {count}")
    extension = os.path.splitext(template)[1]
    if extension not in FORMATS:
        raise UsageError(f"{flag}: {template!r}: the extension says the format: "
                         + ", ".join(f"{e} ({what})" for e, what in FORMATS.items()))
    return extension


def image_path(template: str, k: int) -> str:
    """The file of image k (numbered k + 1)."""
    return _NUMBER.sub(lambda m: f"{k + 1:0{len(m.group(0))}d}", template, count=1)


def encode(image: Image, extension: str) -> bytes:
    g = image.model.geometry
    if extension == ".bin":
        return image.photons.tobytes()
    if extension == ".cbf":
        return cbf.encode(image_files.cbf_header(image.config, g, created=FIXED_TIME), image.counts)
    return image_files.smv_bytes(image_files.smv_header(image.config, g), image_files.stacked(image.counts))


def check(plan: Series | Stills, outputs: Outputs, counts_made: bool) -> str | None:
    """The image files' format (None: no --template); usage errors for what cannot be written
    (``counts_made``: whether images are recorded, by the noise image or a --response chain)."""
    if outputs.template is None and outputs.nexus is None:
        raise UsageError("give --template NAME_#####.EXT (numbered files) or --nexus FILE (NeXus), or both")
    config = plan.base
    if outputs.nexus is not None:
        if not counts_made:
            raise UsageError("--nexus: a dataset's NeXus file holds the noise image, which -nonoise does not make")
        if outputs.shard_size < 1:
            raise UsageError(f"--shard-size must be at least 1, got {outputs.shard_size}")
        atomic.check(outputs.nexus, "--nexus")
    if outputs.template is None:
        return None
    extension = check_template(outputs.template, plan.count)
    if extension in (".cbf", ".img") and not counts_made:
        raise UsageError(f"--template: {FORMATS[extension]} is not made (-nonoise); remove -nonoise or write .bin")
    if extension == ".cbf" and config.detector.n_panels > 1:
        raise UsageError(f"--template: a miniCBF holds one panel and this detector has {config.detector.n_panels}; "
                         "write .img or .bin")
    for path, flag in ((outputs.manifest_path, "--manifest"), (outputs.export_expt, "--export-expt")):
        if path:
            atomic.check(path, flag)
    return extension


def blocks(plan: Series | Stills, outputs: Outputs, parallelism: int | None = None) -> list[range]:
    """The units of work (each written by one worker; a block's files are complete or absent, so
    a block can be done again): the NeXus shards, or runs of at most ``shard_size`` images,
    shorter where that gives each of ``parallelism`` workers several."""
    if outputs.nexus is not None:
        return outputs.shards(plan.count)
    return runs(plan.count, task_size(plan.count, outputs.shard_size, parallelism))


def shard_missing(block: range, plan: Series | Stills, outputs: Outputs) -> bool:
    """Whether ``block`` is a NeXus shard not yet written."""
    if outputs.nexus is None:
        return False
    return not os.path.exists(outputs.shard_path(block.start // outputs.shard_size, len(outputs.shards(plan.count))))


def missing_in(block: range, plan: Series | Stills, outputs: Outputs) -> list[int]:
    """The images of ``block`` to render: those whose file is missing, or all if its shard is."""
    if shard_missing(block, plan, outputs):
        return list(block)
    if outputs.template is None:
        return []
    return [k for k in block if not os.path.exists(image_path(outputs.template, k))]


def render_block(plan: Series | Stills, outputs: Outputs, block: range, renderer: Renderer,
                 progress: Callable[[int], None] = lambda k: None) -> list[int]:
    """Render and write what ``block`` lacks; ``progress(k)`` after each image.  Returns the
    images rendered."""
    todo = missing_in(block, plan, outputs)
    extension = None if outputs.template is None else os.path.splitext(outputs.template)[1]
    shard = shard_missing(block, plan, outputs)
    first, counts = None, []  # the shard's first image (its scan starts there) and every image's counts
    for k, image in zip(todo, renderer.images(plan.config(k) for k in todo)):
        if extension is not None and not os.path.exists(image_path(outputs.template, k)):
            atomic.write_bytes(image_path(outputs.template, k), encode(image, extension), "--template")
        if shard:
            first = first or image
            counts.append(image.counts.reshape(image.config.detector.n_panels, *image.counts.shape[-2:]))
        progress(k)
    if shard:
        write_shard(plan, outputs, block.start // outputs.shard_size, first, np.stack(counts))
    return todo


def run_dataset(plan: Series | Stills, options, outputs: Outputs, *,
                progress: Callable[[int, int], None] | None = None,
                tell: Callable[[str], None] = lambda text: None, scale_out=None) -> list[int]:
    """Render every image that is missing, in this process or on ``scale_out`` (a
    :class:`nbsim.datasets.distributed.ScaleOut`); then write the manifest, the experiment
    list and the NeXus master.  Returns the images rendered now."""
    check(plan, outputs, plan.base.output.noisefile is not None or bool(getattr(options, "responses", ())))
    parallelism = scale_out.parallelism if scale_out is not None else None
    work = [(block, missing_in(block, plan, outputs)) for block in blocks(plan, outputs, parallelism)]
    total = sum(len(todo) for _, todo in work)
    if total < plan.count:
        tell(f"{plan.count - total} of {plan.count} images exist already; rendering the other {total}")
    pending = [block for block, todo in work if todo]
    done: list[int] = []

    def advance(rendered) -> None:
        done.extend(rendered)
        if progress is not None:
            progress(len(done), total)

    renderer = Renderer(plan.config(0), options, images=plan.count)  # set up here: the engine for all
    if scale_out is not None:
        scale_out.render(plan, renderer.options, outputs, pending, advance)
    else:
        for block in pending:
            render_block(plan, outputs, block, renderer, progress=lambda k: advance([k]))
    finish(plan, outputs, renderer.engine)
    return sorted(done)


def write_shard(plan: Series | Stills, outputs: Outputs, j: int, first: Image, counts: np.ndarray) -> None:
    """NeXus shard j: the counts (frames, panels, slow, fast) of its images, the scan from the
    first one's."""
    experiment = simulated_experiment(first.config, first.model, image=outputs.nexus)
    path = outputs.shard_path(j, len(outputs.shards(plan.count)))
    atomic.write_bytes(path, nexus.encode(experiment, counts, created=FIXED_TIME), "--nexus")


def finish(plan: Series | Stills, outputs: Outputs, engine: str = "auto") -> None:
    """The manifest and the experiment list of a dataset whose images are all written
    (``engine``: what rendered them; the flags that make an image again name it, unless auto)."""
    lines = []
    engine_flags = [] if engine == "auto" else ["--engine", engine]
    shards = outputs.shards(plan.count) if outputs.nexus else []
    frames = {}  # image -> (shard file, frame in it, sha256 of its counts): each shard read once
    for j, images in enumerate(shards):
        path = outputs.shard_path(j, len(shards))
        for frame, (k, digest) in enumerate(zip(images, _frame_digests(path))):
            frames[k] = (path, frame, digest)
    for k in range(plan.count):
        record = {**plan.record(k)}
        if outputs.template is not None:
            path = image_path(outputs.template, k)
            with open(path, "rb") as fh:
                record.update(file=path, sha256=hashlib.sha256(fh.read()).hexdigest())
        if outputs.nexus is not None:
            shard, frame, digest = frames[k]
            record.update(nexus=outputs.nexus, shard=shard, frame=frame, counts_sha256=digest)
        lines.append(json.dumps({**record, "reproduce": plan.reproduce(k) + engine_flags}))
    files = [atomic.Output(outputs.manifest_path, ("\n".join(lines) + "\n").encode(), "--manifest")]
    if outputs.nexus is None and not outputs.export_expt:
        atomic.write_all(files)
        return
    first = simulated_experiment(plan.config(0), _model(plan.config(0)), image=outputs.nexus or "")  # image 0's
    if outputs.nexus is not None:
        relative = [(os.path.relpath(outputs.shard_path(j, len(shards)), os.path.dirname(outputs.nexus) or "."), len(s))
                    for j, s in enumerate(shards)]
        files.append(atomic.Output(outputs.nexus, nexus.encode_master(first, relative, np.uint16, created=FIXED_TIME),
                                   "--nexus"))
    if outputs.export_expt:
        files.append(atomic.Output(outputs.export_expt, expt.encode(truth(plan, outputs, first)), "--export-expt"))
    atomic.write_all(files)


def _frame_digests(shard: str) -> list[str]:
    """sha256 of each frame's counts in a shard, as stored (little-endian integers)."""
    import h5py
    import hdf5plugin  # noqa: F401  (the shards' compression)

    with h5py.File(shard, "r") as f:
        data = f["/entry/data/data"]
        little = data.dtype.newbyteorder("<")
        return [hashlib.sha256(np.ascontiguousarray(data[i], dtype=little).tobytes()).hexdigest()
                for i in range(data.shape[0])]


def _model(config):
    from nbsim.model.build import build_model

    return build_model(config)


def _real_space(config) -> list[list[float]]:
    """The crystal's real-space vectors (Å, after the misset), without building a whole model."""
    import torch

    from nbsim.model.crystal import build_lattice

    def t(x):
        return None if x is None else torch.tensor(x, dtype=torch.float64)

    c = config.crystal
    lattice = build_lattice(cell=t(c.cell), matrix=t(c.reciprocal_matrix), wavelength=t(config.beam.wavelength),
                            misset=t(c.misset))
    return lattice.real.tolist()


def truth(plan: Series | Stills, outputs: Outputs, first: expt.Experiment) -> list[expt.Experiment]:
    """The dataset as DIALS experiments, from ``first``, image 0's: one sweep of every frame, or
    one experiment per still."""

    def image_of(k: int) -> dict:
        if outputs.template:
            return {"image": image_path(outputs.template, k)}
        return {"image": outputs.nexus, "frame": k}

    if isinstance(plan, Series):  # one crystal, turning
        return [attrs.evolve(first, frames=plan.count, template=outputs.template or outputs.nexus,
                             image=image_of(0)["image"])]
    # stills share the beam direction and detector; each has its crystal and wavelength
    return [attrs.evolve(first, real_space=_real_space(config), wavelength=config.beam.wavelength, **image_of(k))
            for k, config in ((k, plan.config(k)) for k in range(plan.count))]
