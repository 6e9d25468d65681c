"""The ``nbsim`` command line: ``nbsim run`` (nanoBragg flags), ``nbsim plugins``.

nanoBragg flags keep their single-dash spelling and may appear in any order; nbsim's own
options are double-dash only, accepted anywhere on the line (``--opt value`` or
``--opt=value``).  User mistakes become one line on stderr and exit status 2 (usage) or 1
(input); no traceback.

The subcommands are built on first use: ``nbsim --version`` and ``nbsim --help`` answer
without importing torch, the plugins or the flag table.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys

import click

import nbsim
from nbsim.errors import NbsimError, RefinementError, UsageError

#: the embedded example of ``nbsim run --example``: a 100 Å cubic crystal, 256x256 detector
EXAMPLE_ARGV = (
    "-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2", "-N", "5",
    "-distance", "100", "-pixel", "0.1", "-detpixels", "256", "-seed", "1",
)

def _flags_help() -> str:
    from nbsim.setup.flags import FLAGS, TOPICS

    lines = []
    for topic in TOPICS:
        lines.append(f"\b\n{topic}:")
        for flag in FLAGS:
            if flag.topic != topic:
                continue
            spelling = " | ".join(flag.names)
            left = f"  {spelling} {flag.metavar}".rstrip()
            lines.append(f"{left}\n        {flag.help}")
        lines.append("")
    return "\n".join(lines)


def _fail(exc: NbsimError) -> None:
    click.echo(f"nbsim: error: {exc}", err=True)
    sys.exit(exc.exit_code)


class RunCommand(click.Command):
    """``nbsim run`` with the nanoBragg flag table in its help and plugin options added."""

    def format_epilog(self, ctx, formatter):
        formatter.write_paragraph()
        formatter.write_text("nanoBragg flags (single dash, any order; values follow their flag):")
        formatter.write_paragraph()
        for line in _flags_help().splitlines():
            formatter.write(line + "\n")


@functools.cache
def _plugin_options():
    """Options the installed plugins add to run and refine, and the loaded plugin system."""
    from nbsim.plugins.system import load_plugins

    try:
        system = load_plugins()
    except NbsimError:
        return [], None
    opts = []
    for spec in system.options:
        opts.append(click.Option([spec.name], type=spec.type, default=None,
                                 help=f"{spec.help} (plugin {spec.plugin}; for {spec.owner}; "
                                      f"default {spec.default})"))
    return opts, system


def _common_options(plugin_opts) -> list:
    from nbsim.engines.pipeline import DEFAULT_MAX_MEMORY

    return [
        click.Option(["--phi-policy"], default="spec", show_default=True, metavar="NAME",
                     help="phi rotation policy: spec (every step rotates the reference lattice) or an "
                          "installed plugin such as c-parity"),
        click.Option(["--device"], default="cpu", show_default=True, help="torch device, e.g. cpu or cuda"),
        click.Option(["--dtype"], type=click.Choice(["float64", "float32"]), default="float64",
                     show_default=True, help="floating-point precision of the render"),
        click.Option(["--max-memory"], default=None, metavar="SIZE",
                     help="memory bound, e.g. 4G: run checks its images and set-up against it before "
                          "rendering and chunks work in the rest (default: the memory available, chunks "
                          f"at most {DEFAULT_MAX_MEMORY >> 30}G); refine: per chunk (default {DEFAULT_MAX_MEMORY >> 30}G)"),
        click.Option(["--lattice"], default=None, metavar="NAME",
                     help="lattice factor plugin (default: from -square_xtal/-round_xtal/...)"),
        click.Option(["--polarization"], default=None, metavar="NAME",
                     help="polarization model plugin (default: kahn, or none with -nopolar)"),
        click.Option(["--image-stage"], default="", metavar="NAMES",
                     help="comma-separated image transforms (plugins) run on the rendered image before "
                          "any output, in order (default: none)"),
        *plugin_opts,
        click.Argument(["flags"], nargs=-1, type=click.UNPROCESSED),
    ]


def _stage_names(image_stage: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in image_stage.split(",") if name.strip())


def _plugin_choices(system, phi_policy: str, image_stage: tuple[str, ...], plugin_values: dict) -> dict:
    """Values of the plugin options of the selected policy and image transforms; an option of
    an object not selected is an error."""
    chosen = {}
    selected = {phi_policy, *image_stage}
    for spec in (system.options if system else []):
        value = plugin_values.get(spec.name.lstrip("-").replace("-", "_"))
        if value is not None and spec.owner not in selected:
            raise UsageError(f"{spec.name} belongs to {spec.owner}, which is not selected "
                             f"(--phi-policy {phi_policy}, --image-stage {','.join(image_stage) or 'none'})")
        if spec.owner in selected:
            chosen[spec.keyword] = spec.default if value is None else value
    return chosen


def _memory(max_memory: str | None) -> int | None:
    """The --max-memory value in bytes, or None when not given (the machine's memory bounds the run)."""
    from nbsim.engines.budget import parse_size

    return parse_size(max_memory) if max_memory else None


def _input_options() -> list:
    """The nbsim options that read what nanoBragg cannot (structures, MTZ, geometry files)."""
    return [
        click.Option(["--mtz"], default=None, metavar="FILE",
                     help="structure factors from a merged MTZ file (read with gemmi), expanded to P1 with "
                          "Friedel mates; its cell is used when neither -cell nor -mat is given"),
        click.Option(["--mtz-column"], default=None, metavar="LABEL",
                     help="the MTZ column to read: amplitudes (type F), or intensities (type J, square roots, "
                          "negative ones as 0)"),
        click.Option(["--structure"], default=None, metavar="FILE",
                     help="structure factors of an atomic model (PDB or mmCIF, summed by gemmi) for every "
                          "reflection the detector reaches, expanded to P1; its cell is used when neither -cell "
                          "nor -mat is given"),
        click.Option(["--d-min"], type=float, default=None, metavar="ANGSTROM",
                     help="resolution limit of the --structure reflections (default: the detector's corners)"),
        click.Option(["--anomalous"], is_flag=True,
                     help="add each element's f' and f'' at the beam energy (-lambda or -energy) to the --structure "
                          "sums, so that Friedel mates differ"),
        click.Option(["--detector"], default=None, metavar="FILE",
                     help="the detector's panels from a geometry file: a DIALS experiment list (.expt), a CrystFEL "
                          ".geom file or an nbsim panel list (JSON); replaces the flags that size and place the "
                          "detector"),
        click.Option(["--spectrum"], default=None, metavar="FILE",
                     help="the beam's spectrum: lines of photon energy (eV) or wavelength (A) and weight, under a "
                          "header '# energy_eV weight' or '# wavelength_A weight'; each line a source, the image "
                          "their weighted sum; replaces -lambda, -energy, -dispersion, -dispsteps, -sourcefile"),
    ]


def _render_options() -> list:
    """How images are rendered and recorded: engine, noise generator, detector response (``nbsim
    run`` and the dataset commands alike)."""
    from nbsim.engines.choice import ENGINE_NAMES
    from nbsim.outputs.noise import METHODS as NOISE_METHODS

    return [
        click.Option(["--engine"], type=click.Choice(ENGINE_NAMES), default="auto", show_default=True,
                     help="render engine: tensor (torch, eager), compiled (torch.compile), numba (compiled CPU "
                          "loop, built-in physics without gradients); auto picks the fastest that applies; "
                          "one that cannot render the job is an error saying why"),
        click.Option(["--noise-rng"], type=click.Choice(NOISE_METHODS), default="c", show_default=True,
                     help="noise generator: c (identical to nanoBragg for a seed) or parallel (fast, counter-based)"),
        click.Option(["--response", "responses"], multiple=True, metavar="NAME[:KEY=VALUE,...]",
                     help="a step of the detector's response, from the ideal photons to what is recorded "
                          "(repeat, in order: e.g. --response psf-gauss:fwhm=172 --response poisson --response "
                          "gain:adu_per_photon=2 --response readout:sigma=3); the int, noise, CBF and NeXus files "
                          "then hold its result"),
    ]


def _sase_options(seeded: bool) -> list:
    """``--sase`` (and, where one image is rendered, the ``--sase-seed`` of its shot)."""
    options = [click.Option(["--sase"], default=None, metavar="MEAN_EV:BANDWIDTH:SPIKES[:BINS]",
                            help="a random spiky XFEL (SASE) spectrum: SPIKES random-phase modes under a Gaussian "
                                 "envelope of relative FWHM BANDWIDTH about MEAN_EV, sampled at BINS energies "
                                 "(default 8 per spike); " + ("drawn from --sase-seed" if seeded else
                                                              "each still its own shot, drawn from (--seed, k)"))]
    if seeded:
        options.append(click.Option(["--sase-seed"], type=int, default=None, metavar="N",
                                    help="the seed of the --sase shot (default 0)"))
    return options


def _inputs(values: dict) -> dict:
    """The RunOptions fields of :func:`_input_options` and :func:`_sase_options`, taken out of a
    callback's ``values``."""
    from nbsim.setup import SpectrumInputs, StructureInputs

    structure = StructureInputs(**{name: values.pop(name) for name in ("mtz", "mtz_column", "structure", "d_min",
                                                                         "anomalous")})
    spectrum = SpectrumInputs(file=values.pop("spectrum"), sase=values.pop("sase", None),
                              sase_seed=values.pop("sase_seed", None))
    return {"structure": structure, "detector": values.pop("detector"), "spectrum": spectrum}


def _make_run_command() -> click.Command:

    plugin_opts, system = _plugin_options()
    params = [
        click.Option(["--example"], is_flag=True, help="render the embedded example (no input files needed)"),
        click.Option(["--provenance"], default=None, metavar="FILE",
                     help="write a JSON record of the run (versions, plugins, seeds, file hashes)"),
        *_render_options(),
        click.Option(["--verbose"], is_flag=True, help="say on stderr which engine renders, and why"),
        *_input_options(),
        *_sase_options(seeded=True),
        click.Option(["--cbf"], default=None, metavar="FILE",
                     help="also write the int image as a Pilatus-style miniCBF (byte-offset compressed), "
                          "the header DIALS and XDS read"),
        click.Option(["--cbf-noise"], is_flag=True, help="the CBF holds the noise image instead of the int image"),
        click.Option(["--nexus"], default=None, metavar="FILE",
                     help="also write an NXmx (NeXus/HDF5) file of the int image, every panel, bitshuffle/LZ4 "
                          "compressed: the layout DIALS reads"),
        click.Option(["--nexus-noise"], is_flag=True,
                     help="the NeXus file holds the noise image instead of the int image"),
        click.Option(["--nexus-float"], is_flag=True,
                     help="the NeXus file holds the float image too (/entry/data/photons)"),
        click.Option(["--response-float"], default=None, metavar="FILE",
                     help="also write the detector response's result as float32, like -floatfile"),
        click.Option(["--png"], default=None, metavar="FILE",
                     help="also draw the float image as a PNG picture (every panel, laid out)"),
        click.Option(["--png-scaling"], type=click.Choice(["log", "adxv"]), default="log", show_default=True,
                     help="log: white spots on black, log scale; adxv: dark spots on white, linear as the PGM"),
        click.Option(["--export-expt"], default=None, metavar="FILE",
                     help="also write the simulated experiment (beam, panels, crystal, goniometer, scan) as a "
                          "DIALS experiment list"),
        click.Option(["--write-hkl"], default=None, metavar="FILE",
                     help="also write the structure factors in use as a nanoBragg HKL file"),
        *_common_options(plugin_opts),
    ]

    def callback(example, phi_policy, device, dtype, max_memory, lattice, polarization, image_stage, noise_rng,
                 provenance, engine, verbose, cbf, cbf_noise, png, png_scaling, export_expt, write_hkl, nexus,
                 nexus_noise, nexus_float, responses, response_float, flags, **plugin_values):
        from nbsim.runner import RunOptions, run

        try:
            inputs = _inputs(plugin_values)
            argv = (EXAMPLE_ARGV if example else ()) + tuple(flags)
            if not argv:
                raise UsageError("no nanoBragg flags given (try 'nbsim run --example' or 'nbsim run --help')")
            options = RunOptions(
                phi_policy=phi_policy, device=device, dtype=dtype, max_memory=_memory(max_memory),
                lattice=lattice, polarization=polarization, provenance=provenance, noise_rng=noise_rng,
                plugin_options=_plugin_choices(system, phi_policy, _stage_names(image_stage), plugin_values),
                image_stage=_stage_names(image_stage), engine=engine, verbose=verbose, **inputs,
                write_hkl=write_hkl, cbf=cbf, cbf_noise=cbf_noise, png=png, png_scaling=png_scaling,
                export_expt=export_expt, nexus=nexus, nexus_noise=nexus_noise, nexus_float=nexus_float,
                responses=responses, response_float=response_float,
            )
            run(argv, options, progress=_progress_bar(argv))
        except NbsimError as exc:
            _fail(exc)

    return RunCommand(
        "run", params=params, callback=callback,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
        help="Render a detector image from nanoBragg flags, exactly as nanoBragg does.",
        short_help=_SHORT_HELP["run"],
        epilog=" ",
    )


def _make_dataset_command(kind: str) -> click.Command:
    """``nbsim series`` (a rotation series) or ``nbsim stills`` (random orientations)."""
    from nbsim.datasets.run import FORMATS

    plugin_opts, system = _plugin_options()
    count = (click.Option(["--frames"], type=click.IntRange(1), required=True, metavar="N",
                          help="frames: frame i is phi0 + i*osc over osc, each with the command line's -phisteps")
             if kind == "series" else
             click.Option(["--count"], type=click.IntRange(1), required=True, metavar="N",
                          help="stills, each in a random orientation (uniform over rotations)"))
    jitters = [] if kind == "series" else [
        click.Option(["--energy-jitter"], type=click.FloatRange(0), default=0.0, metavar="FRACTION",
                     help="relative rms spread of each still's photon energy (Gaussian; needs -oversample)"),
        click.Option(["--size-jitter"], type=click.FloatRange(0), default=0.0, metavar="FRACTION",
                     help="relative rms spread of each still's cell counts Na, Nb, Nc (Gaussian, whole cells; "
                          "needs -oversample)"),
        *_sase_options(seeded=False),
    ]
    params = [
        count,
        click.Option(["--seed"], type=int, default=0, show_default=True,
                     help="the dataset's seed: image k's random draws (orientation, noise, mosaic domains) come "
                          "from (seed, k), so that any image can be made again alone"),
        *jitters,
        click.Option(["--template"], default=None, metavar="NAME_#####.EXT",
                     help="numbered image files ('#' for the number, from 1): "
                          + ", ".join(f"{ext} {what}" for ext, what in FORMATS.items())),
        click.Option(["--nexus"], default=None, metavar="FILE",
                     help="an NXmx master file of every image (the noise images), its frames in shards "
                          "FILE_00001.nxs ... beside it"),
        click.Option(["--shard-size"], type=click.IntRange(1), default=100, show_default=True, metavar="N",
                     help="images per NeXus shard, or per block of numbered files (with workers, blocks of files are "
                          "shorter where that gives every worker about four)"),
        click.Option(["--batch"], type=click.IntRange(1), default=None, metavar="N",
                     help="images rendered together at most, where they differ only in orientation and render on "
                          "the tensor engine (a GPU); default: as many as --max-memory allows (on a CPU, 32 MiB of "
                          "images), up to 64; 1: one at a time"),
        click.Option(["--manifest"], default=None, metavar="FILE",
                     help="the manifest, JSON lines (default: the template's name + .manifest.jsonl)"),
        click.Option(["--export-expt"], default=None, metavar="FILE",
                     help="the dataset's ground truth as a DIALS experiment list"),
        *_scale_out_options("render"),
        *_render_options(),
        *_input_options(),
        *_common_options(plugin_opts),
    ]

    def callback(phi_policy, device, dtype, max_memory, lattice, polarization, image_stage, engine, noise_rng,
                 seed, template, nexus, shard_size, batch, manifest, export_expt, workers, scheduler, responses,
                 flags, **values):
        from nbsim.datasets import plan_from_argv
        from nbsim.datasets.run import Outputs, run_dataset
        from nbsim.runner import RunOptions

        try:
            inputs = _inputs(values)
            size = {"frames": values.pop("frames")} if kind == "series" else {
                "count": values.pop("count"), "energy_jitter": values.pop("energy_jitter"),
                "size_jitter": values.pop("size_jitter")}
            argv = tuple(flags)
            if not argv:
                raise UsageError(f"no nanoBragg flags given (see 'nbsim {kind} --help')")
            options = RunOptions(
                phi_policy=phi_policy, device=device, dtype=dtype, max_memory=_memory(max_memory),
                lattice=lattice, polarization=polarization, noise_rng=noise_rng, engine=engine, responses=responses,
                plugin_options=_plugin_choices(system, phi_policy, _stage_names(image_stage), values),
                image_stage=_stage_names(image_stage), batch=batch, **inputs)
            plan = plan_from_argv(kind, argv, options, seed=seed, warn=_warn, **size)
            outputs = Outputs(template=template, nexus=nexus, shard_size=shard_size, manifest=manifest,
                              export_expt=export_expt)
            progress = _image_progress(argv, plan.count)
            with _scale_out(workers, scheduler) as scale_out:
                run_dataset(plan, options, outputs, progress=progress, tell=_tell, scale_out=scale_out)
        except NbsimError as exc:
            _fail(exc)

    return RunCommand(
        kind, params=params, callback=callback,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
        help=_DATASET_HELP[kind], short_help=_SHORT_HELP[kind], epilog=" ",
    )


_DATASET_HELP = {
    "series": "Render a rotation series: frame i is the image of phi0 + i*osc over osc, identical to "
              "'nbsim run' with that -phi (and the frame's noise seed, in the manifest).",
    "stills": "Render stills in random orientations: still k is drawn from (--seed, k), and 'nbsim run' with "
              "the flags its manifest line gives renders it alone.",
}


def _warn(text: str) -> None:
    click.echo(f"nbsim: warning: {text}", err=True)


def _tell(text: str) -> None:
    click.echo(f"nbsim: {text}", err=True)


def _scale_out_options(work: str) -> list[click.Option]:
    return [
        click.Option(["--workers"], type=click.IntRange(1), default=None, metavar="N",
                     help=f"{work} on N local worker processes (a Dask LocalCluster) instead of this one"),
        click.Option(["--scheduler"], default=None, metavar="ADDRESS",
                     help=f"{work} on the Dask cluster at ADDRESS (e.g. tcp://host:8786; workers must see the "
                          "same files)"),
    ]


@contextlib.contextmanager
def _scale_out(workers: int | None, scheduler: str | None):
    """The Dask cluster of --workers/--scheduler (None: this process)."""
    if workers and scheduler:
        raise UsageError("--workers starts a local cluster and --scheduler names one: give one of them")
    if not (workers or scheduler):
        yield None
        return
    from nbsim.datasets.distributed import ScaleOut

    with ScaleOut(workers=workers, scheduler=scheduler) as scale_out:
        yield scale_out


def _image_progress(argv, total: int, unit: str = "image"):
    """A bar counting images (tqdm: rate and time left), where the console shows progress."""
    if _progress_bar(argv) is None:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def show(done: int, count: int) -> None:
        bar.total = count
        bar.update(done - bar.n)
        if done >= count:
            bar.close()

    return show


def _make_refine_command() -> click.Command:
    from nbsim.engines.pipeline import DEFAULT_MAX_MEMORY
    from nbsim.refine import UNITS

    plugin_opts, system = _plugin_options()
    params = [
        click.Option(["--observed"], default=None, metavar="IMAGE",
                     help="observed image: SMV, miniCBF or NeXus (its -adc offset removed), or raw float32"),
        click.Option(["--stills"], default=None, metavar="LIST",
                     help="refine every shot of LIST (JSON lines: an 'nbsim stills' manifest, or images with "
                          "starting models) on its own, instead of one --observed image"),
        click.Option(["--refine", "refine_names"], required=True, metavar="NAMES",
                     help=f"comma-separated parameters to refine: {', '.join(UNITS)}"),
        click.Option(["--json", "json_out"], default=None, metavar="FILE",
                     help="write start and refined values, scale and loss history as JSON"),
        click.Option(["--optimizer"], type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True),
        click.Option(["--iterations"], type=click.IntRange(1), default=100, show_default=True,
                     help="optimizer steps per stage (L-BFGS: inner iterations)"),
        click.Option(["--stages"], default="1", show_default=True, metavar="B,B,...",
                     help="block sizes of the pixel stages (1 = full resolution)"),
        click.Option(["--spots/--no-spots"], default=True, show_default=True,
                     help="fit the geometry to the observed spots' positions before the pixels"),
        click.Option(["--space-group"], default=None, metavar="NAME",
                     help="keep the cell in this space group's crystal system (a name or number, gemmi's)"),
        click.Option(["--f-sigma"], type=float, default=0.1, show_default=True, metavar="S",
                     help="refined structure factors: relative standard deviation of their restraint to the start"),
        click.Option(["--table"], default=None, metavar="FILE",
                     help="--stills: the refined shots, JSON lines (default: LIST's name + .refined.jsonl)"),
        click.Option(["--export-expt"], default=None, metavar="FILE",
                     help="--stills: the refined shots as a DIALS experiment list"),
        click.Option(["--block-size"], type=click.IntRange(1), default=None, metavar="N",
                     help="--stills: shots per block, the unit of scale-out (default 10, or fewer so that "
                          "every worker gets about four)"),
        *_scale_out_options("--stills: refine"),
        *_common_options(plugin_opts),
    ]

    def callback(observed, stills, refine_names, json_out, optimizer, iterations, stages, spots, space_group, f_sigma,
                 table, export_expt, block_size, workers, scheduler, phi_policy, device, dtype, max_memory, lattice,
                 polarization, image_stage, flags, **plugin_values):
        from nbsim.plugins.selection import check_device, check_dtype

        try:
            if (observed is None) == (stills is None):
                raise UsageError("give --observed IMAGE (one image) or --stills LIST (many shots), one of them")
            for name, value in (("--table", table), ("--export-expt", export_expt), ("--workers", workers),
                                ("--scheduler", scheduler)):
                if stills is None and value is not None:
                    raise UsageError(f"{name} goes with --stills")
            if stills is not None and json_out is not None:
                raise UsageError("--json goes with --observed; --stills writes its --table")
            try:
                blocks = [int(x) for x in stages.split(",") if x.strip()]
            except ValueError:
                raise UsageError(f"--stages: expected block sizes such as 4,1, got {stages!r}") from None
            if not blocks or min(blocks) < 1:
                raise UsageError(f"--stages: expected positive block sizes, got {stages!r}")
            simulation = dict(
                device=check_device(device), dtype=check_dtype(dtype), phi_policy=phi_policy, lattice=lattice,
                polarization=polarization,
                policy_options=_plugin_choices(system, phi_policy, _stage_names(image_stage), plugin_values),
                image_stage=_stage_names(image_stage), max_memory=_memory(max_memory) or DEFAULT_MAX_MEMORY)
            names = tuple(n.strip() for n in refine_names.split(",") if n.strip())
            choices = {"refinement": {"space_group": space_group, "f_sigma": f_sigma},
                       "run": {"optimizer": optimizer, "stages": blocks, "iterations": iterations, "spots": spots}}
            if stills is not None:
                _refine_stills(stills, tuple(flags), names, simulation, choices, table, export_expt, block_size,
                               workers, scheduler)
            else:
                _refine_one(observed, tuple(flags), names, simulation, choices, json_out)
        except NbsimError as exc:
            _fail(exc)

    return click.Command(
        "refine", params=params, callback=callback,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
        help="Fit parameters of a nanoBragg model (its flags) to an observed image, or to every shot of --stills.",
        short_help=_SHORT_HELP["refine"],
    )


def _refine_one(observed, flags, names, simulation, choices, json_out) -> None:
    from nbsim.refine import Refinement, read_observed
    from nbsim.refine.refinement import CONVERGED
    from nbsim.simulation import Simulation

    sim = Simulation.from_argv(list(flags), **simulation)
    for text in sim.config.warnings:
        click.echo(f"nbsim: warning: {text}", err=True)
    refinement = Refinement(sim, read_observed(observed, sim), names, **choices["refinement"])
    result = refinement.run(**choices["run"], progress=lambda line: click.echo(line, err=True), warn=_warn)
    for line in result.table():
        click.echo(line)
    click.echo(f"loss {result.loss[0]:.6g} -> {result.loss[-1]:.6g} in {result.evaluations} evaluations, "
               f"{result.seconds:.1f} s")
    if json_out:
        from nbsim.io import atomic

        record = {"argv": list(flags), "observed": observed, **choices["run"], **choices["refinement"],
                  **result.to_json()}
        atomic.write_bytes(json_out, (json.dumps(record, indent=2) + "\n").encode(), "--json")
    if not result.converged:
        raise RefinementError(f"refine: did not converge in --iterations {choices['run']['iterations']}: the loss "
                              f"still changed by more than {CONVERGED:g} of itself in the last round; the table "
                              "shows where it stopped (raise --iterations or start closer)")


def _refine_stills(stills, flags, names, simulation, choices, table, export_expt, block_size, workers,
                   scheduler) -> None:
    import os

    from nbsim.io import atomic, expt
    from nbsim.refine.stills import StillsJob, experiments, read_shots, refine_stills

    shots = read_shots(stills)
    table = table or os.path.splitext(stills)[0].removesuffix(".manifest") + ".refined.jsonl"
    if export_expt:
        atomic.check(export_expt, "--export-expt")
    job = StillsJob(flags=flags, names=names, simulation=simulation, **choices)
    with _scale_out(workers, scheduler) as scale_out:
        rows = refine_stills(job, shots, table, block_size=block_size, scale_out=scale_out,
                             progress=_image_progress(flags, len(shots), unit="shot"), tell=_tell)
    if export_expt:
        atomic.write_bytes(export_expt, expt.encode(experiments(job, rows)), "--export-expt")
    failed = [r for r in rows if not r["converged"]]
    click.echo(f"{len(rows) - len(failed)} of {len(rows)} shots refined and converged; table {table}")
    if failed:
        raise RefinementError(f"refine: {len(failed)} of {len(rows)} shots did not converge or could not be "
                              f"refined (first: shot {failed[0]['index']}: {failed[0]['error'] or 'not converged'}); "
                              f"see {table}")


def _progress_bar(argv):
    if "-noprogress" in argv or not sys.stderr.isatty():
        return None
    if "-progress" not in argv and "-printout" in argv:
        return None

    def show(done: int, total: int, label: str = "") -> None:
        width = 40
        filled = width * done // max(total, 1)
        prefix = f"{label} " if label else ""
        sys.stderr.write(f"\r{prefix}[{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}%")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


class _Interrupted(BaseException):
    """SIGINT or SIGTERM; not a KeyboardInterrupt, which click answers with a blank line of its own."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class NbsimGroup(click.Group):
    """A click group whose usage errors are one line on stderr, like nbsim's own errors, and whose
    subcommands are built when they are first looked up."""

    def list_commands(self, ctx):
        return sorted(_FACTORIES)

    def get_command(self, ctx, name):
        return _command(name) if name in _FACTORIES else None

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl(sorted(_SHORT_HELP.items()))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        import signal

        def interrupted(signum, frame):
            raise _Interrupted(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, interrupted)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _Interrupted as exc:
            click.echo("nbsim: interrupted", err=True)  # the staged outputs vanish with the process
            sys.exit(128 + exc.signum)
        except click.exceptions.Abort:  # end of input at a prompt
            click.echo("nbsim: aborted", err=True)
            sys.exit(1)
        except MemoryError as exc:
            click.echo(f"nbsim: error: out of memory{': ' + str(exc) if str(exc) else ''}; "
                       "lower --max-memory or make the run smaller (-detpixels, -mosaic_dom)", err=True)
            sys.exit(1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"nbsim: error: {where}{exc.strerror or exc}", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"nbsim: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _make_plugins_command() -> click.Command:
    @click.command("plugins", short_help=_SHORT_HELP["plugins"])
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def plugins_command(as_json):
        """List installed plugins: name, version, distribution, hooks, origin."""
        from nbsim.plugins.system import load_plugins

        system = load_plugins()
        if as_json:
            record = {
                "plugins": [
                    {"name": p.name, "version": p.version, "distribution": p.distribution, "origin": p.origin,
                     "hooks": list(p.hooks), "provides": list(p.provides)}
                    for p in system.info
                ],
                "failed": [{"name": n, "error": e} for n, e in system.failures],
            }
            click.echo(json.dumps(record, indent=2))
            return
        for p in system.info:
            dist = f"{p.distribution} {p.version}".strip()
            click.echo(f"{p.name}  ({p.origin}{', ' + dist if dist else ''})")
            click.echo(f"    hooks: {', '.join(p.hooks) or '-'}")
            if p.provides:
                click.echo(f"    provides: {', '.join(p.provides)}")
        for name, error in system.failures:
            click.echo(f"{name}  (failed to load: {error})")

    return plugins_command


#: the one-line help of each subcommand, listed by ``nbsim --help`` without building the commands
_SHORT_HELP = {
    "plugins": "list installed plugins",
    "refine": "refine model parameters against an image",
    "run": "render an image from nanoBragg flags",
    "series": "render a rotation series of frames",
    "stills": "render stills in random orientations",
}
_FACTORIES = {"plugins": _make_plugins_command, "refine": _make_refine_command, "run": _make_run_command,
              "series": functools.partial(_make_dataset_command, "series"),
              "stills": functools.partial(_make_dataset_command, "stills")}


@functools.cache
def _command(name: str) -> click.Command:
    return _FACTORIES[name]()


@click.group(cls=NbsimGroup, context_settings={"help_option_names": ["--help"]})
@click.version_option(nbsim.__version__, "--version", prog_name="nbsim")
def cli():
    """nbsim: the nanoBragg diffraction simulator in PyTorch."""


def openmp_wait_policy(environ: dict, others_running: int) -> str | None:
    """OMP_WAIT_POLICY for this process: PASSIVE when other processes are running on the CPUs
    right now (``others_running`` >= 1), unless the user chose; None to leave it alone.

    torch's OpenMP threads wait for work by spinning; on a busy machine a spinning thread
    takes the time slice that the thread with work needs, at every parallel region: with every
    core busy, the tensor engine's 2-thread renders took 2-7x as long as with sleeping waiters.
    On an idle machine sleeping waiters cost 1.4-2x, hence only when the CPUs are busy now
    (reports/benchmarks/threads_under_load.md).  The load average would not do: it counts
    the nbsim runs that just ended, so a series of runs would slow itself down.
    """
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return None
    return "PASSIVE" if others_running >= 1 else None


def _others_running() -> int:
    """Processes running on the CPUs now, this one excepted (Linux /proc/loadavg; 0 elsewhere)."""
    try:
        with open("/proc/loadavg") as fh:
            return max(0, int(fh.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return 0


def main() -> None:
    import os

    policy = openmp_wait_policy(os.environ, _others_running())
    if policy:
        os.environ["OMP_WAIT_POLICY"] = policy  # read once, when torch loads its OpenMP runtime
    cli(prog_name="nbsim")


if __name__ == "__main__":  # pragma: no cover
    main()
