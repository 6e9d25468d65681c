"""Dataset throughput: images per second of many stills, nbsim against the reference C program.

    .venv/bin/python benchmarks/stills_throughput.py [--reference PATH] [--count 100] [--threads 2]
                                                     [--problems P2,P1] [--out reports/benchmarks]

The reference program (``--reference``, default ``$NANOBRAGG`` or /work/refbin/nanoBragg, built
from bl831/nanoBragg's ``nanoBragg.c`` with ``gcc -O3 -fopenmp -o nanoBragg nanoBragg.c -lm``)
renders a dataset as its users do: one process per image, each in a random orientation
(``-misset random -misset_seed K -seed K``) and writing its float, noiseless and noise images.
nbsim renders the same stills with one ``nbsim stills`` command, timed whole (start-up
included), in a fresh directory each time (in a used one it would skip the images already
there). The problems are the suite's P2 without its fixed misset, and P1.  Both programs get
``OMP_NUM_THREADS=--threads`` (nbsim's torch and numba threads follow it).  Also measured,
for P2: ``--workers 2`` where ``nbsim stills`` has that option, and the peak memory of
``nbsim stills`` at two counts, which should not grow with the number of images (the two
wall times also give the seconds per image without the start-up).
Results: ``stills_throughput.json`` and ``stills_throughput.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_record import environment, write_report  # noqa: E402
from suite import PROBLEMS, _run  # noqa: E402

from nbsim.physics import jit  # noqa: E402

MiB = 2**20
NBSIM = Path(sys.executable).with_name("nbsim")
DEFAULT_REFERENCE = os.environ.get("NANOBRAGG", "/work/refbin/nanoBragg")
TEMPLATE = "still_#####.img"
#: the second count of the memory comparison, unless --count is not above it
MEMORY_SMALL_COUNT = 10


def without_flag(flags: str, flag: str, values: int) -> list[str]:
    """``flags`` as words, without ``flag`` and the ``values`` words that follow it."""
    words = flags.split()
    if flag not in words:
        return words
    i = words.index(flag)
    return words[:i] + words[i + 1 + values:]


#: a still takes its orientation from its seed: the suite's fixed P2 misset would fight it
STILLS = {"P2": without_flag(PROBLEMS["P2"], "-misset", 3), "P1": PROBLEMS["P1"].split()}


def reference_image_flags(k: int) -> list[str]:
    """What makes the reference program's run k one image of a dataset (seeds from 1: 0 is 'time')."""
    return ["-misset", "random", "-misset_seed", str(k + 1), "-seed", str(k + 1),
            "-floatfile", f"img_{k}.bin", "-intfile", f"img_{k}.img", "-noisefile", f"noise_{k}.img",
            "-nopgm"]


def nbsim_stills(flags: list[str], count: int, extra: tuple[str, ...] = ()) -> list[str]:
    return [str(NBSIM), "stills", *flags, "--count", str(count), "--seed", "1",
            "--template", TEMPLATE, "-noprogress", *extra]


class TreeMemory:
    """Peak summed RSS of this process's descendants, sampled while the block runs.

    ``_run``'s wait4 figure is the largest single process; worker processes add up, which
    only sampling the whole tree shows (a peak shorter than the interval can be missed).
    """

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak = interval, 0
        self._done = threading.Event()
        self._me = psutil.Process()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            total = 0
            for child in self._me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # ended between listing and reading
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def checked_run(cmd: list[str], cwd: str, env: dict) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes of the largest process) of ``cmd``; fails loudly."""
    wall, rss, done = _run(cmd, cwd, env)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} (in {cwd}) exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall, rss


def measure_reference(reference: str, problem: str, count: int, env: dict) -> dict:
    """One reference process per image, the whole loop timed."""
    with tempfile.TemporaryDirectory(prefix="stills-c-") as work:
        peak, start = 0, time.perf_counter()
        for k in range(count):
            _, rss = checked_run([reference, *STILLS[problem], *reference_image_flags(k)], work, env)
            peak = max(peak, rss)
        wall = time.perf_counter() - start
        files = len(list(Path(work).glob("noise_*.img")))
    if files != count:
        raise RuntimeError(f"the reference program wrote {files} noise images, not {count}")
    return {"wall_seconds": wall, "peak_rss_bytes": peak}


def measure_nbsim(problem: str, count: int, env: dict, extra: tuple[str, ...] = ()) -> dict:
    """One ``nbsim stills`` command in a fresh directory, timed whole."""
    with tempfile.TemporaryDirectory(prefix="stills-nbsim-") as work, TreeMemory() as tree:
        wall, rss = checked_run(nbsim_stills(STILLS[problem], count, extra), work, env)
        files = len(list(Path(work).glob(TEMPLATE.replace("#####", "*"))))
    if files != count:
        raise RuntimeError(f"nbsim stills wrote {files} images, not {count}")
    return {"wall_seconds": wall, "peak_rss_bytes": rss, "peak_tree_rss_bytes": tree.peak}


def has_workers_option(env: dict) -> bool:
    done = subprocess.run([str(NBSIM), "stills", "--help"], env=env, capture_output=True, text=True)
    return "--workers" in done.stdout


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def shown(cmd: list[str], threads: int) -> str:
    """A command as it would be typed: its thread setting, the programs by their usual names."""
    words = [Path(cmd[0]).name if cmd[0] == str(NBSIM) else cmd[0], *cmd[1:]]
    return f"OMP_NUM_THREADS={threads} {shlex.join(words)}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=DEFAULT_REFERENCE,
                        help="the reference program (default: $NANOBRAGG or /work/refbin/nanoBragg)")
    parser.add_argument("--count", type=int, default=100, help="images per dataset")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of both programs")
    parser.add_argument("--problems", default="P2,P1", help="of P2 and P1")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    problems = args.problems.split(",")
    reference = str(Path(args.reference).resolve())
    if not os.access(reference, os.X_OK):
        parser.error(f"no reference program at {reference} (build it as this script's docstring says)")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    workers = has_workers_option(env)
    small_count = min(MEMORY_SMALL_COUNT, args.count // 2)
    # numba's cache is keyed by a digest of nbsim's sources: an edit while this runs would
    # make a timed command recompile (about half a minute), so the digest is checked at the end
    digest = jit.sources_digest()

    def record_row(problem: str, program: str, cmd: list[str], count: int, result: dict) -> dict:
        row = {"problem": problem, "program": program, "count": count, "command": shown(cmd, args.threads),
               **result, "images_per_second": count / result["wall_seconds"]}
        print(json.dumps(row), flush=True)
        return row

    rows, first_commands, memory = [], [], []
    for problem in problems:
        # the first command may compile the render loop; later ones load it from the cache
        first = measure_nbsim(problem, 1, env)
        first_commands.append({"problem": problem, "wall_seconds": first["wall_seconds"]})
        print(json.dumps({"first_command": problem, **first}), flush=True)
        cmd = [reference, *STILLS[problem], *reference_image_flags(0)]
        rows.append(record_row(problem, "reference", cmd, args.count,
                               measure_reference(reference, problem, args.count, env)))
        one_process = measure_nbsim(problem, args.count, env)
        rows.append(record_row(problem, "nbsim", nbsim_stills(STILLS[problem], args.count), args.count,
                               one_process))
        if problem == "P2" and workers:
            extra = ("--workers", "2")
            rows.append(record_row(problem, "nbsim --workers 2", nbsim_stills(STILLS[problem], args.count, extra),
                                   args.count, measure_nbsim(problem, args.count, env, extra)))
        if problem == "P2" and small_count >= 1:
            small = measure_nbsim(problem, small_count, env)
            print(json.dumps({"memory_count": small_count, **small}), flush=True)
            memory = [{"count": small_count, **small}, {"count": args.count, **one_process}]
    digest_changed = jit.sources_digest() != digest

    reference_rows = {r["problem"]: r for r in rows if r["program"] == "reference"}
    for r in rows:
        if r["program"] != "reference" and r["problem"] in reference_rows:
            r["images_per_second_over_reference"] = (r["images_per_second"]
                                                     / reference_rows[r["problem"]]["images_per_second"])
    machine = environment()
    machine["cpu_model"] = cpu_model()
    record = {
        "environment": machine, "count": args.count, "threads": args.threads,
        "reference": {"path": reference, "sha256": hashlib.sha256(Path(reference).read_bytes()).hexdigest()},
        "stills_flags": {p: " ".join(STILLS[p]) for p in problems}, "workers_option": workers,
        "results": rows, "first_commands": first_commands, "memory": memory,
        "sources_digest_changed": digest_changed,
    }
    write_report(args.out, "stills_throughput", record, report_lines(record, args))
    return 0


def report_lines(record: dict, args) -> list[str]:
    env = record["environment"]
    lines = [
        "# Dataset throughput: many stills, nbsim against the reference program",
        "",
        f"`.venv/bin/python benchmarks/stills_throughput.py --count {args.count} --threads {args.threads} "
        f"--problems {args.problems}` ({env['date']}, git {env['git_revision'][:12]}"
        f"{' with local changes' if env['git_dirty'] else ''}, nbsim {env['nbsim']}, torch {env['torch']}, "
        f"{env['cpus']} CPUs: {env['cpu_model']}).",
        "",
        f"Both programs run with `OMP_NUM_THREADS={args.threads}` (nbsim's torch and numba threads follow it). "
        "The reference program runs once per image, as its users make a dataset, each image a process "
        "of its own; nbsim makes the dataset with one command, timed whole (start-up included), in a "
        "fresh directory. The reference writes three files per image (float, noiseless SMV, noise SMV), "
        f"nbsim one (the noise SMV, `--template {TEMPLATE}`) plus its manifest. Reference program: "
        f"`{record['reference']['path']}` (sha256 {record['reference']['sha256'][:16]}).",
        "",
        "| problem | program | images | wall s | images/s | images/s over the reference | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in record["results"]:
        ratio = r.get("images_per_second_over_reference")
        lines.append(f"| {r['problem']} | {r['program']} | {r['count']} | {r['wall_seconds']:.2f} | "
                     f"{r['images_per_second']:.3g} | {'' if ratio is None else f'{ratio:.2f}'} | "
                     f"{peak_memory(r)} |")
    lines += ["", "Peak RSS: of the largest process (wait4); for nbsim, also the sum over its processes, "
              "sampled every 0.05 s, where that is larger (worker processes)."]
    if not record["workers_option"]:
        lines += ["", "`--workers 2`: not measured, `nbsim stills --help` does not list `--workers` in this tree."]
    else:
        lines += ["", "`--workers N` may set its workers' threads itself (when this script was written: "
                  "CPUs / N each, whatever `OMP_NUM_THREADS` says): where the machine has more CPUs than "
                  "`--threads`, that row may use more of them than the others."]
    if record["memory"]:
        small, large = record["memory"]
        per_image = (large["wall_seconds"] - small["wall_seconds"]) / (large["count"] - small["count"])
        lines += ["", "## Memory against the number of images (P2, `nbsim stills`)", "",
                  "| images | wall s | peak RSS, largest process | peak RSS, all processes (sampled) |",
                  "|---|---|---|---|"]
        lines += [f"| {m['count']} | {m['wall_seconds']:.2f} | {m['peak_rss_bytes'] / MiB:.0f} MiB | "
                  f"{m['peak_tree_rss_bytes'] / MiB:.0f} MiB |" for m in record["memory"]]
        if per_image > 0:  # timing noise can exceed a few images' work
            lines += ["", f"Without the start-up (the difference of the two wall times): {per_image:.3f} s "
                      f"per image, {1 / per_image:.3g} images/s."]
    lines += ["", "## Commands", "",
              "The reference program, image k = 0 .. count-1 (shown for k = 0; seeds k+1, files named by k):",
              "", "```"]
    lines += [r["command"] for r in record["results"] if r["program"] == "reference"]
    lines += ["```", "", "nbsim:", "", "```"]
    lines += [r["command"] for r in record["results"] if r["program"] != "reference"]
    lines += ["```", "", "First command of each problem (one still; compiles the render loop when nbsim's "
              "sources changed since numba's cache was written, then cached), not in the table: "
              + ", ".join(f"{f['problem']} {f['wall_seconds']:.1f} s" for f in record["first_commands"]) + "."]
    if record["sources_digest_changed"]:
        lines += ["", "**nbsim's sources changed during this run**: a timed command may include a "
                  "recompile of the render loop (about half a minute). Run again on a quiet tree."]
    return lines


def peak_memory(row: dict) -> str:
    peak = max(row["peak_rss_bytes"], row.get("peak_tree_rss_bytes") or 0)
    return f"{peak / MiB:.0f} MiB"


if __name__ == "__main__":
    sys.exit(main())
