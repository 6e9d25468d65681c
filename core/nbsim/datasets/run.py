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
from collections.abc import Callable, Sequence

import attrs

from nbsim.datasets.plan import Series, Stills
from nbsim.datasets.render import Image, Renderer
from nbsim.errors import UsageError
from nbsim.io import atomic, cbf, expt
from nbsim.outputs import image_files
from nbsim.outputs.experiment import simulated_experiment

#: the time in every dataset file's header: files must not depend on when they were made
FIXED_TIME = "2000-01-01T00:00:00.000"
#: image formats by the template's extension: what each file holds
FORMATS = {".cbf": "miniCBF of the noise image", ".img": "SMV of the noise image", ".bin": "float32 photons"}
_NUMBER = re.compile(r"#+")


@attrs.frozen
class Outputs:
    template: str  # 'name_#####.cbf' (.cbf, .img or .bin)
    manifest: str | None = None  # default: the template's name up to the number, + 'manifest.jsonl'
    export_expt: str | None = None

    @property
    def manifest_path(self) -> str:
        if self.manifest:
            return self.manifest
        stem = _NUMBER.split(self.template, maxsplit=1)[0].rstrip("_.-") or "dataset"
        return stem + ".manifest.jsonl"


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


def check(plan: Series | Stills, outputs: Outputs) -> str:
    """The image format; usage errors for what the dataset cannot write."""
    extension = check_template(outputs.template, plan.count)
    config = plan.base
    if extension in (".cbf", ".img") and config.output.noisefile is None:
        raise UsageError(f"--template: {FORMATS[extension]} is not made (-nonoise); remove -nonoise or write .bin")
    if extension == ".cbf" and config.detector.n_panels > 1:
        raise UsageError(f"--template: a miniCBF holds one panel and this detector has {config.detector.n_panels}; "
                         "write .img or .bin")
    for path, flag in ((outputs.manifest_path, "--manifest"), (outputs.export_expt, "--export-expt")):
        if path:
            atomic.check(path, flag)
    return extension


def run_dataset(plan: Series | Stills, options, outputs: Outputs, *,
                progress: Callable[[int, int], None] | None = None,
                tell: Callable[[str], None] = lambda text: None) -> list[int]:
    """Render every image whose file is missing; write the manifest and experiment list.
    Returns the indices rendered now."""
    extension = check(plan, outputs)
    missing = [k for k in range(plan.count) if not os.path.exists(image_path(outputs.template, k))]
    if len(missing) < plan.count:
        tell(f"{plan.count - len(missing)} of {plan.count} images exist already; rendering the other {len(missing)}")
    renderer = Renderer(plan.config(0), options) if missing else None
    for done, k in enumerate(missing, start=1):
        image = renderer.image(plan.config(k))
        atomic.write_bytes(image_path(outputs.template, k), encode(image, extension), "--template")
        if progress is not None:
            progress(done, len(missing))
    finish(plan, outputs)
    return missing


def finish(plan: Series | Stills, outputs: Outputs) -> None:
    """The manifest and the experiment list of a dataset whose images are all written."""
    lines = []
    for k in range(plan.count):
        path = image_path(outputs.template, k)
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        lines.append(json.dumps({**plan.record(k), "file": path, "sha256": digest, "reproduce": plan.reproduce(k)}))
    files = [atomic.Output(outputs.manifest_path, ("\n".join(lines) + "\n").encode(), "--manifest")]
    if outputs.export_expt:
        files.append(atomic.Output(outputs.export_expt, expt.encode(truth(plan, outputs)), "--export-expt"))
    atomic.write_all(files)


def truth(plan: Series | Stills, outputs: Outputs) -> list[expt.Experiment]:
    """The dataset as DIALS experiments: one sweep of every frame, or one experiment per still."""
    from nbsim.model.build import build_model

    def experiment(config, **fields) -> expt.Experiment:
        return attrs.evolve(simulated_experiment(config, build_model(config), image=""), **fields)

    if isinstance(plan, Series):
        return [experiment(plan.config(0), frames=plan.count, template=outputs.template,
                           image=image_path(outputs.template, 0))]
    return [experiment(plan.config(k), image=image_path(outputs.template, k)) for k in range(plan.count)]


def reproduce_argv(argv: Sequence[str], plan: Series | Stills, k: int) -> list[str]:
    """The ``nbsim run`` flags that render image k alone."""
    return [*argv, *plan.reproduce(k)]
