"""Per-shot refinement of stills (``nbsim refine --stills LIST``, ``docs/refinement.md``).

Every shot is its own refinement: the command line's model with the shot's flags appended
(its orientation, crystal, seeds), fitted to the shot's image.  ``LIST`` is JSON lines, one
shot each: the manifest ``nbsim stills`` writes, or any file of the same form:

* ``file`` (an SMV, miniCBF or raw float32 image), or ``nexus`` and ``frame`` (a frame of a
  NeXus file); relative paths are relative to the list's folder;
* ``start``: the shot's flags of the starting model (an indexing program's orientation, as
  ``-misset`` angles or ``-matrix``); without it ``reproduce`` (the manifest's flags that
  made the image), else none;
* ``index`` (the line's number if absent).

Shots are refined in blocks, in this process or as Dask tasks (:class:`~nbsim.datasets.distributed.ScaleOut`);
each finished block's rows are written whole to ``TABLE.parts/``, so that a rerun refines only
the blocks that are missing; at the end the rows are joined, in index order, into ``TABLE``
(JSON lines) and, if asked, a DIALS experiment list of the refined crystals.  A shot whose fit
fails or does not converge is a row saying so; the others go on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence

import attrs

from nbsim.datasets.distributed import task_size
from nbsim.errors import InputError, NbsimError
from nbsim.io import atomic

#: shots per block (a Dask task, a file of rows)
BLOCK = 10


@attrs.frozen
class Shot:
    index: int
    image: str  # absolute path
    frame: int | None  # of a NeXus file
    flags: tuple[str, ...]  # after the command line's


@attrs.frozen
class StillsJob:
    """What every shot shares: the command line's flags and the refinement's choices."""

    flags: tuple[str, ...]
    names: tuple[str, ...]
    simulation: dict  # keyword arguments of Simulation (device, dtype, phi_policy, ...)
    refinement: dict  # keyword arguments of Refinement (space_group, f_sigma)
    run: dict  # keyword arguments of Refinement.run (optimizer, stages, iterations, spots)


def read_shots(path: str) -> list[Shot]:
    """The shots of a list (module docstring); errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InputError(f"--stills: cannot read {path} ({exc.strerror or exc})") from None
    folder = os.path.dirname(os.path.abspath(path))
    shots = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--stills: {path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object")
        image, frame = record.get("file"), None
        if image is None and record.get("nexus") is not None:
            image, frame = record["nexus"], record.get("frame", 0)
        if not isinstance(image, str):
            raise InputError(f"{where}: no image (give \"file\", or \"nexus\" and \"frame\")")
        flags = record.get("start", record.get("reproduce", []))
        if not isinstance(flags, list) or not all(isinstance(x, str) for x in flags):
            raise InputError(f"{where}: \"start\" must be a list of flags (strings)")
        if frame is not None and (not isinstance(frame, int) or frame < 0):
            raise InputError(f"{where}: \"frame\" must be a frame number, got {frame!r}")
        index = record.get("index", len(shots))
        if not isinstance(index, int):
            raise InputError(f"{where}: \"index\" must be an integer, got {index!r}")
        shots.append(Shot(index=index, image=os.path.join(folder, image), frame=frame, flags=tuple(flags)))
    if not shots:
        raise InputError(f"--stills: {path} lists no shots")
    indices = [s.index for s in shots]
    if len(set(indices)) != len(indices):
        raise InputError(f"--stills: {path} lists an index twice")
    return shots


def refine_shot(job: StillsJob, shot: Shot) -> dict:
    """The table row of one shot (its error, if its fit could not be made)."""
    from nbsim.refine.observed import read_observed
    from nbsim.refine.refinement import Refinement
    from nbsim.simulation import Simulation

    row = {"index": shot.index, "image": shot.image, "frame": shot.frame, "flags": list(shot.flags)}
    began = time.perf_counter()
    try:
        sim = Simulation.from_argv([*job.flags, *shot.flags], **job.simulation)
        refinement = Refinement(sim, read_observed(shot.image, sim, flag="--stills", frame=shot.frame),
                                job.names, **job.refinement)
        result = refinement.run(**job.run)
    except NbsimError as exc:
        return {**row, "converged": False, "error": str(exc), "seconds": time.perf_counter() - began}
    real_space = sim.model(refinement.params()).lattice.real.tolist()
    return {**row, **result.to_json(), "error": None, "real_space": real_space}


def refine_block(job: StillsJob, shots: Sequence[Shot]) -> list[dict]:
    return [refine_shot(job, shot) for shot in shots]


def _part_path(table: str, block: Sequence[Shot]) -> str:
    return os.path.join(table + ".parts", f"shots_{block[0].index:08d}.jsonl")


def _read_rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def refine_stills(job: StillsJob, shots: Sequence[Shot], table: str, *, block_size: int | None = None,
                  scale_out=None, progress: Callable[[int, int], None] | None = None,
                  tell: Callable[[str], None] = lambda text: None) -> list[dict]:
    """Refine every shot that has no row in ``TABLE.parts/`` yet, in blocks of ``block_size``
    shots (default :data:`BLOCK`, or fewer so that every worker of ``scale_out`` has work:
    :func:`~nbsim.datasets.distributed.task_size`); the table's rows (index order).  What is done is
    read shot by shot, so a rerun with another block size or number of workers resumes too."""
    atomic.check(table, "--table")
    parts = table + ".parts"
    os.makedirs(parts, exist_ok=True)
    wanted = {s.index for s in shots}
    rows = {}
    for name in sorted(os.listdir(parts)):
        if name.startswith("shots_") and name.endswith(".jsonl"):
            rows.update((r["index"], r) for r in _read_rows(os.path.join(parts, name)) if r["index"] in wanted)
    missing = [s for s in shots if s.index not in rows]
    if block_size is None:
        block_size = task_size(len(missing), BLOCK, scale_out.parallelism if scale_out is not None else None)
    pending = [missing[i:i + block_size] for i in range(0, len(missing), block_size)]
    if rows:
        tell(f"{len(rows)} of {len(shots)} shots are refined already; refining the other "
             f"{len(shots) - len(rows)}")
    todo = sum(len(b) for b in pending)

    def advance(block_rows: list[dict]) -> None:
        block = next(b for b in pending if b[0].index == block_rows[0]["index"])  # rows in the block's order
        lines = "".join(json.dumps(r) + "\n" for r in block_rows)
        atomic.write_bytes(_part_path(table, block), lines.encode(), "--table")
        rows.update((r["index"], r) for r in block_rows)
        if progress is not None:
            progress(len(rows) - (len(shots) - todo), todo)

    if scale_out is not None and pending:
        scale_out.run(_refine_block_task, job, pending, advance, key="nbsim-stills")
    else:
        for block in pending:
            advance(refine_block(job, block))
    ordered = [rows[s.index] for s in shots]
    atomic.write_bytes(table, "".join(json.dumps(r) + "\n" for r in ordered).encode(), "--table")
    return ordered


def _refine_block_task(job: StillsJob, block: Sequence[Shot]) -> list[dict]:
    return refine_block(job, block)


def experiments(job: StillsJob, rows: Sequence[dict]):
    """The refined shots as DIALS experiments (one per shot that was refined): each shot's
    model at its refined values."""
    from nbsim.outputs.experiment import simulated_experiment
    from nbsim.refine.parameters import from_display
    from nbsim.simulation import Simulation

    made = []
    for row in rows:
        if row.get("error"):
            continue
        sim = Simulation.from_argv([*job.flags, *row["flags"]], **job.simulation)
        refined = {n: from_display(n, v["refined"], sim.initial(n)) for n, v in row["parameters"].items()}
        experiment = simulated_experiment(sim.config, sim.model(refined), image=row["image"])
        made.append(attrs.evolve(experiment, frame=row["frame"]))
    return made
