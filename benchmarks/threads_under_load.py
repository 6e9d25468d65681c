"""The tensor engine's render time with 1 and 2 threads, on an idle and on a loaded machine.

    .venv/bin/python benchmarks/threads_under_load.py [--rounds 3] [--out reports/benchmarks]

The reliability issue saw ``--engine tensor`` run 3.5x slower with 2 threads than with
``OMP_NUM_THREADS=1`` on a loaded machine.  torch's OpenMP threads wait for work by spinning
(libgomp spins about 300 000 times before it sleeps); when other processes hold the cores, a
spinning thread takes the time slice the thread with work needs, at every parallel region.
Each row here renders a 512x512, 20-domain job four times in a fresh process (the first is a
warm-up) under one OpenMP wait setting, with no load and with busy processes holding every
core (``yes``), and reports the best and the median of the last three renders.
Results: ``threads_under_load.json`` and ``.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from run_record import environment, write_report

FLAGS = ("-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 512 -lambda 1 -distance 100 "
         "-mosaic 1 -mosaic_dom 20")
RENDER = f"""
import json, time, torch, nbsim
from nbsim.engines.pipeline import render
sim = nbsim.Simulation.from_argv({FLAGS.split()!r})
m = sim.model()
times = []
with torch.no_grad():
    for _ in range(4):
        t = time.perf_counter(); render(m, sim.physics, engine="tensor"); times.append(time.perf_counter() - t)
print(json.dumps(times[1:]))
"""
#: OpenMP wait settings compared: libgomp's default (spinning), and sleeping waiters, which the CLI
#: chooses on a loaded machine (nbsim_cli.app.openmp_wait_policy)
WAITS = {"default (spin)": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


def render_times(threads: int, wait: dict) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(wait, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = {}
    for load in (0, cores):
        hogs = [subprocess.Popen(["sh", "-c", "exec yes > /dev/null"]) for _ in range(load)]
        try:
            for _ in range(args.rounds):  # rounds interleave the settings: drift hits them alike
                for name, wait in WAITS.items():
                    for threads in (1, 2):
                        rows.setdefault((load, name, threads), []).extend(render_times(threads, wait))
        finally:
            for hog in hogs:
                hog.kill()
    record = {"environment": environment(), "flags": FLAGS, "cores": cores, "rows": [
        {"busy_processes": load, "wait": name, "threads": threads, "best_s": min(t), "median_s": statistics.median(t),
         "times_s": t} for (load, name, threads), t in rows.items()]}
    lines = ["# Tensor engine: threads on an idle and a loaded machine", "",
             f"`{FLAGS}`, tensor engine, render only; {cores} cores; best and median of "
             f"{3 * args.rounds} renders per row (fresh process per 3). Busy processes: one per core.", "",
             "| busy processes | OpenMP wait | threads | best s | median s |", "|---|---|---|---|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['busy_processes']} | {r['wait']} | {r['threads']} | {r['best_s']:.2f} | {r['median_s']:.2f} |")
    print("\n".join(lines))
    write_report(args.out, "threads_under_load", record, lines)


if __name__ == "__main__":
    main()
