"""A whole nanoBragg-style run: resolve, report, render, write the files, print statistics.

This is what ``nbsim run`` does.  Output paths are checked, and the memory the run needs is
estimated (``nbsim.engines.budget``), before any work; every output (images, the ``Fdump.bin`` cache,
the provenance record) is prepared in memory and all are written together at the end
(``nbsim.io.atomic``), so a failure or a kill leaves no file behind and old outputs intact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch

import nbsim
from nbsim.engines import budget
from nbsim.engines import choice as engines
from nbsim.engines.choice import EngineError
from nbsim.engines.pipeline import render
from nbsim.errors import UsageError
from nbsim.io import atomic, cbf, expt, fdump, hkl, nexus
from nbsim.model.build import build_model
from nbsim.model.config import RunConfig
from nbsim.outputs import image_files as outputs
from nbsim.outputs import picture, report, response
from nbsim.outputs.experiment import simulated_experiment
from nbsim.outputs.noise import noise_counts
from nbsim.outputs.statistics import image_statistics
from nbsim.plugins.selection import check_device, check_dtype, select_physics
from nbsim.plugins.system import hook_caller, load_plugins
from nbsim.setup import SpectrumInputs, StructureInputs, config_from_argv


@attrs.frozen
class RunOptions:
    phi_policy: str = "spec"
    device: str = "cpu"
    dtype: str = "float64"
    max_memory: int | None = None  # bound on the whole run in bytes; None: what the machine has (nbsim.engines.budget)
    lattice: str | None = None
    polarization: str | None = None
    provenance: str | None = None
    noise_rng: str = "c"
    plugin_options: Mapping[str, Any] = attrs.field(factory=dict)
    image_stage: tuple[str, ...] = ()  # image transforms run on the rendered image (nbsim.engines.image_stage)
    engine: str = "auto"  # see nbsim.engines.choice
    verbose: bool = False  # say on stderr which engine renders, and why
    structure: StructureInputs = StructureInputs()  # --mtz, --mtz-column, --structure, --d-min
    write_hkl: str | None = None  # --write-hkl FILE: the structure factors in use, as an HKL file
    cbf: str | None = None  # --cbf FILE: a miniCBF of the int image (of the noise image with cbf_noise)
    cbf_noise: bool = False
    png: str | None = None  # --png FILE: a picture of the float image
    png_scaling: str = "log"  # nbsim.outputs.picture.SCALINGS
    export_expt: str | None = None  # --export-expt FILE: the simulated experiment as a DIALS experiment list
    nexus: str | None = None  # --nexus FILE: an NXmx file of the int image (of the noise image with nexus_noise)
    nexus_noise: bool = False
    nexus_float: bool = False  # --nexus-float: the float image beside the counts
    responses: tuple[str, ...] = ()  # --response NAME:k=v,... in order (nbsim.outputs.response)
    response_float: str | None = None  # --response-float FILE: the recorded image as float32
    detector: str | None = None  # --detector FILE: the panels of a geometry file (nbsim.io.detector_file)
    spectrum: SpectrumInputs = SpectrumInputs()  # --spectrum FILE, --sase SPEC --sase-seed N (nbsim.setup.spectrum)
    batch: int | None = None  # datasets: images rendered together at most (nbsim.engines.batch); None: memory's choice


@attrs.frozen(eq=False)
class RunResult:
    config: RunConfig
    image: np.ndarray  # float32 (spixels, fpixels)
    files: tuple[str, ...]
    lines: tuple[str, ...]


def run(
    argv: Sequence[str],
    options: RunOptions = RunOptions(),
    *,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = lambda text: print(f"nbsim: warning: {text}", file=sys.stderr),
    tell: Callable[[str], None] = lambda text: print(f"nbsim: {text}", file=sys.stderr, flush=True),
    progress: Callable[..., None] | None = None,
) -> RunResult:
    """Resolve, render and write one run; nothing is written unless everything is.

    :param tell: takes nbsim's own remarks (not the reference's lines): the engine with
        ``verbose``, and, when ``progress`` is given, that a first render compiles the CPU loop.
    :param progress: called as ``progress(done, total)`` while rendering, and as
        ``progress(done, total, label)`` during set-up work that takes long (mosaic domains).
    """
    started = time.perf_counter()
    device = check_device(options.device)
    dtype = check_dtype(options.dtype)
    config = config_from_argv(argv, structure=options.structure, detector=options.detector, spectrum=options.spectrum)
    for text in config.warnings:
        warn(text)
    if config.detector.n_panels > 1:
        warn(f"the {config.detector.n_panels} panels are stacked along the slow axis in the single-image files "
             f"(-floatfile, -intfile, -noisefile, -pgmfile: {config.detector.fpixels} x "
             f"{config.detector.n_panels * config.detector.spixels} pixels), whose headers describe the first panel "
             "only; --export-expt describes every panel")
    _check_cbf(config, options)
    _check_nexus(config, options)
    _check_response(options)
    if options.write_hkl and config.crystal.structure_factors is None:
        raise UsageError("--write-hkl: there are no structure factors to write (only -default_F); "
                         "give -hkl, --mtz or --structure")
    for path, flag in output_targets(config, options):
        atomic.check(path, flag)
    working_memory = budget.check(config, options.max_memory)
    system = load_plugins()
    physics = select_physics(config, phi_policy=options.phi_policy, lattice=options.lattice,
                             polarization=options.polarization, options=options.plugin_options,
                             image_stage=options.image_stage, system=system)
    chain = response.select_chain(system, options.responses)
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        echo(text)

    setup_progress = None if progress is None else functools.partial(progress, label="mosaic domains")
    model = build_model(config, device=device, dtype=dtype, progress=setup_progress)
    try:  # an engine that cannot render the job stops the run before it prints anything
        choice = engines.choose(options.engine, model, physics, engines.sub_evaluations(model, model.rendered.shape[0]))
    except EngineError as exc:
        raise UsageError(f"--engine {exc.name}: {exc.reason}") from None
    if options.verbose:
        tell(f"engine {choice.name} ({choice.reason})")
    for text in report.setup_lines(config, model):
        say(text)

    trace = hook_caller(system, "nbsim_trace")
    traced = _traced_pixels(config)
    with torch.no_grad():
        result = render(
            model, physics, max_memory=working_memory, progress=progress, engine=choice,
            notice=None if progress is None else tell,
            trace=(lambda stage, chunk, tensors: trace(stage=stage, chunk=chunk, tensors=tensors)) if trace else None,
            traced=traced,
        )
    image32 = result.image.to(torch.float32).cpu().numpy()
    omega_sum, switch = result.omega_sum, result.interpolation_switch
    unfinite = int(np.count_nonzero(~np.isfinite(image32)))
    if unfinite:
        warn(f"{unfinite} pixels are infinite or NaN (the running product overflowed, as the reference's does); "
             "the integer images hold 0 or their maximum there")
    del result  # the full-precision image: the outputs below need only the float32 copy
    render_seconds = time.perf_counter() - started

    o, d = config.output, config.detector
    stats = image_statistics(image32, model.rendered.cpu().numpy(), d.roi, float(model.panels.pixel_size[0]) / config.sampling.oversample,
                             config.sampling.oversample)
    files: list[atomic.Output] = []
    sf = config.crystal.structure_factors
    if sf is not None and sf.origin == "hkl":
        files.append(atomic.Output(o.dumpfile, fdump.encode(sf), "-dump"))
    if options.write_hkl:
        files.append(atomic.Output(options.write_hkl, hkl.encode(sf), "--write-hkl"))
    # native byte order, as the reference fwrite()s its floats
    files.append(atomic.Output(o.floatfile, image32.tobytes(), "-floatfile"))
    scale = outputs.int_scale(o.intfile_scale, stats.max_I)
    g = model.geometry
    header = outputs.smv_header(config, g)
    noise = pixels = None
    if chain:  # the recorded image: the int, noise, CBF and NeXus files carry it
        recorded, notes = response.apply_chain(chain, image32, config, model)
        for text in notes:
            tell(text)
        int_image = pixels = response.recorded_pixels(recorded)
    else:
        int_image = outputs.int_pixels(image32, d.roi, scale, o.adc_offset)
    files.append(atomic.Output(o.intfile, outputs.smv_bytes(header, outputs.stacked(int_image)), "-intfile"))
    pgm_scale = None
    if o.pgmfile is not None:
        pgm_scale = outputs.pgm_scale(o.pgm_scale, scale, stats.rmsd)
        files.append(atomic.Output(o.pgmfile, outputs.pgm_bytes(image32, d.roi, pgm_scale), "-pgmfile"))
    if o.noisefile is not None and not chain:
        counts = noise_counts(image32, config, method=options.noise_rng, progress=setup_progress)
        pixels, photons, overloads = outputs.noise_pixels(counts, d.roi, o.adc_offset)
        del counts
        noise = (photons, overloads)
    if o.noisefile is not None:
        files.append(atomic.Output(o.noisefile, outputs.smv_bytes(header, outputs.stacked(pixels)), "-noisefile"))
    if options.response_float:
        files.append(atomic.Output(options.response_float, recorded.astype(np.float32).tobytes(), "--response-float"))
    if options.export_expt:
        if d.curved:
            warn("--export-expt: a DIALS experiment list describes flat panels; the curved detector is written "
                 "as the flat panel it bends")
        experiment = simulated_experiment(config, model, image=options.cbf or options.nexus or o.intfile)
        files.append(atomic.Output(options.export_expt, expt.encode(experiment), "--export-expt"))
    if options.nexus:
        frame = (1, d.n_panels, d.spixels, d.fpixels)  # one frame of every panel
        counts = (pixels if options.nexus_noise else int_image).reshape(frame)
        try:
            data = nexus.encode(simulated_experiment(config, model, image=options.nexus), counts,
                                photons=image32.reshape(frame) if options.nexus_float else None)
        except ValueError as exc:
            raise UsageError(f"--nexus: {exc}") from None
        files.append(atomic.Output(options.nexus, data, "--nexus"))
    if options.png:
        linear = pgm_scale if pgm_scale is not None else outputs.pgm_scale(o.pgm_scale, scale, stats.rmsd)
        files.append(atomic.Output(options.png, picture.png_bytes(image32, options.png_scaling, linear), "--png"))
    if options.cbf:
        if not outputs.normal_to_beam(g):
            warn("--cbf: the miniCBF header describes a detector normal to the beam, which this one is not "
                 "(rotated or swung): readers of the CBF will place it wrongly")
        counts = pixels if options.cbf_noise else int_image
        files.append(atomic.Output(options.cbf, cbf.encode(outputs.cbf_header(config, g), counts), "--cbf"))
    if options.provenance:
        record = provenance(config, options, physics, system, files, render_seconds, choice)
        files.append(atomic.Output(options.provenance, (json.dumps(record, indent=2) + "\n").encode(), "--provenance"))
    atomic.write_all(files)
    # the reference prints its "writing ..." lines as it writes; here they follow the files they name
    tail = report.result_lines(config, model, stats, omega_sum, int_scale=scale,
                               pgm_scale=pgm_scale, noise=noise, response=options.responses)
    if switch is not None:
        # printed mid-render by the reference, its last line unterminated until the blank line
        tail = report.interpolation_warning(switch) + tail[1:]
    for text in tail:
        say(text)
    return RunResult(config=config, image=image32, files=tuple(f.path for f in files), lines=tuple(lines))


def output_targets(config: RunConfig, options: RunOptions) -> list[tuple[str, str]]:
    """(path, flag) of every file the run will write, in the order it writes them."""
    o = config.output
    sf = config.crystal.structure_factors
    targets = [(o.dumpfile, "-dump")] if sf is not None and sf.origin == "hkl" else []
    targets += [(options.write_hkl, "--write-hkl")] if options.write_hkl else []
    targets += [(o.floatfile, "-floatfile"), (o.intfile, "-intfile")]
    targets += [(o.pgmfile, "-pgmfile")] if o.pgmfile is not None else []
    targets += [(o.noisefile, "-noisefile")] if o.noisefile is not None else []
    targets += [(options.response_float, "--response-float")] if options.response_float else []
    targets += [(options.export_expt, "--export-expt")] if options.export_expt else []
    targets += [(options.nexus, "--nexus")] if options.nexus else []
    targets += [(options.png, "--png")] if options.png else []
    targets += [(options.cbf, "--cbf")] if options.cbf else []
    targets += [(options.provenance, "--provenance")] if options.provenance else []
    return targets


def _check_cbf(config: RunConfig, options: RunOptions) -> None:
    if options.cbf_noise and not options.cbf:
        raise UsageError("--cbf-noise chooses what --cbf holds, and --cbf is not given")
    if not options.cbf:
        return
    if config.detector.n_panels > 1:
        raise UsageError(f"--cbf: a miniCBF holds one panel and this detector has {config.detector.n_panels}; "
                         "nothing is written (one file per panel is not supported)")
    if options.cbf_noise and config.output.noisefile is None:
        raise UsageError("--cbf-noise: the noise image is not made (-nonoise); remove -nonoise or --cbf-noise")


def _check_response(options: RunOptions) -> None:
    if options.response_float and not options.responses:
        raise UsageError("--response-float writes the detector response's result, and no --response is given")


def _check_nexus(config: RunConfig, options: RunOptions) -> None:
    for flag, given in (("--nexus-noise", options.nexus_noise), ("--nexus-float", options.nexus_float)):
        if given and not options.nexus:
            raise UsageError(f"{flag} chooses what --nexus holds, and --nexus is not given")
    if options.nexus_noise and config.output.noisefile is None:
        raise UsageError("--nexus-noise: the noise image is not made (-nonoise); remove -nonoise or --nexus-noise")


def _traced_pixels(config: RunConfig) -> list[tuple[int, int]] | None:
    o, d = config.output, config.detector
    if not o.printout:
        return None
    if o.printout_pixel is not None:
        return [o.printout_pixel]
    return [(f, s) for s in range(d.spixels) for f in range(d.fpixels)]


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def provenance(config, options, physics, system, files, render_seconds, engine) -> dict:
    c, d = config.crystal, config.detector
    inputs = [p for p in (c.matrix_file, d.mask_file, d.img_file, options.detector, options.spectrum.file) if p]
    if c.structure_factors is not None:
        inputs.append(c.structure_factors.path)
    source_file = next((config.argv[i + 1] for i, t in enumerate(config.argv[:-1]) if t == "-sourcefile"), None)
    if source_file:
        inputs.append(source_file)
    return {
        "argv": list(config.argv),
        "nbsim": nbsim.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": options.device,
        "dtype": options.dtype,
        "phi_policy": {"name": physics.policy.name, "plugin": system.phi_policies.owner(physics.policy.name),
                       "options": dict(options.plugin_options)},
        "lattice_factor": physics.lattice.name,
        "polarization_model": physics.polarization.name,
        "image_stage": [{"name": t.name, "plugin": system.image_transforms.owner(t.name)} for t in physics.image_stage],
        "engine": {"name": engine.name, "reason": engine.reason},
        "plugins": [attrs.asdict(p) for p in system.info],
        "seeds": {"noise": config.output.seed, "mosaic": c.mosaic_seed, "misset": c.misset_seed},
        "noise_rng": options.noise_rng,
        "structure_factors": None if c.structure_factors is None else {
            "origin": c.structure_factors.origin, "reflections": c.structure_factors.count,
            "mtz_column": options.structure.mtz_column},
        "warnings": list(config.warnings),
        "render_seconds": render_seconds,
        "inputs": {p: _sha256(p) for p in inputs},
        "outputs": {f.path: hashlib.sha256(f.data).hexdigest() for f in files},  # the provenance file excepted
    }
