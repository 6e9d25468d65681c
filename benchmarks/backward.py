"""Backward-pass cost: forward+backward time relative to forward alone, and peak memory.

    .venv/bin/python benchmarks/backward.py [--out reports/benchmarks]

For each case, separate processes measure (a) the forward render without gradients, (b)
forward and backward with respect to cell, distance, beam centre and misset with chunk
checkpointing (the default), (c) the same keeping every chunk's graph.  Peak resident memory
is each process's own.  The checkpointed process first renders one pixel with gradients:
torch imports its compiler stack on the first checkpoint (about 2.5 s, once per process).
Writes ``backward.json`` and ``backward.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from run_record import write_report  # noqa: E402

CASES = {
    "512x512, 1 sub-evaluation": "-cell 70 80 90 75 85 95 -misset 10 20 30 -lambda 1 -N 5 -default_F 100 "
                                 "-distance 60 -pixel 0.2 -detpixels 512 -oversample 1",
    "256x256, 200 sub-evaluations": "-cell 70 80 90 75 85 95 -misset 10 20 30 -lambda 1.0 -N 10 -default_F 100 "
                                    "-distance 100 -pixel 0.2 -detpixels 256 -mosaic 0.5 -mosaic_dom 10 "
                                    "-phi 0 -osc 0.5 -phisteps 5 -oversample 2",
}
INNER = r"""
import json, sys, time, torch
torch.set_num_threads(2)
from nbsim.simulation import Simulation
sim = Simulation.from_argv(sys.argv[1].split())
mode = sys.argv[2]
if mode == "checkpoint":  # the first checkpointed render imports torch's compiler stack (once, ~2.5 s)
    warm = sim.parameters("distance")
    sim.image(warm, roi=(0, 1, 0, 1), checkpoint=True).sum().backward()
t = time.perf_counter()
if mode == "forward":
    with torch.no_grad():
        sim.image()
else:
    params = sim.parameters("cell", "distance", "beam_center", "misset")
    image = sim.image(params, checkpoint=(mode == "checkpoint"))
    image.sum().backward()
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def run(argv: str, mode: str) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", INNER, argv, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": proc.stderr.read()[-1000:]}
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_bytes": usage.ru_maxrss * 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    rows = []
    for label, flags in CASES.items():
        row = {"case": label, "argv": flags}
        for mode in ("forward", "checkpoint", "keep-graph"):
            row[mode] = run(flags, mode)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = ["# Backward pass: cost and memory", "",
             "`.venv/bin/python benchmarks/backward.py`; gradients of the image sum with respect to cell, "
             f"distance, beam centre and misset; 2 threads; {time.strftime('%Y-%m-%d')}.", "",
             "| case | forward s | forward+backward s (checkpointed) | ratio | peak RSS forward | "
             "peak RSS checkpointed | peak RSS keeping graphs |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        f, c, k = r["forward"], r["checkpoint"], r["keep-graph"]
        if any("error" in x for x in (f, c, k)):
            lines.append(f"| {r['case']} | error | | | | | |")
            continue
        lines.append(f"| {r['case']} | {f['seconds']:.2f} | {c['seconds']:.2f} | {c['seconds'] / f['seconds']:.1f} | "
                     f"{f['peak_rss_bytes'] / 2**20:.0f} MiB | {c['peak_rss_bytes'] / 2**20:.0f} MiB | "
                     f"{k['peak_rss_bytes'] / 2**20:.0f} MiB |")
    write_report(args.out, "backward", rows, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
