"""Shots per second of per-shot stills refinement (``nbsim refine --stills``).

    .venv/bin/python benchmarks/stills_refinement.py [--count 20] [--out reports/refinement]

A stills dataset is made with ``nbsim stills`` (the triclinic crystal of ``docs/refinement.md``
on 96 x 96 pixels of 0.4 mm and on 256 x 256 pixels of 0.2 mm, one sub-pixel each); every
shot starts 0.3 degree off in each misset angle and 0.5% off in the cell, and
``nbsim refine --stills`` refines misset and cell, timed whole (start-up included), in this
process and with ``--workers 2``, each in a fresh directory (a used one would skip the shots
refined already).  Also reported: the median seconds of one shot's fit (from the table),
how many converged, and the worst misset error against the manifest's truth.
Results: ``stills_refinement.json`` and ``stills_refinement.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from run_record import environment, write_report  # noqa: E402

NBSIM = Path(sys.executable).with_name("nbsim")
CRYSTAL = "-cell 70 80 90 75 85 95 -default_F 100 -lambda 1 -N 5 -distance 60 -oversample 1 -noprogress"
SIZES = {"96 x 96 px of 0.4 mm": "-pixel 0.4 -detpixels 96", "256 x 256 px of 0.2 mm": "-pixel 0.2 -detpixels 256"}
START_CELL = ["-cell", "70.35", "79.6", "90.45", "75.3", "84.7", "95.4"]
MODES = {"one process": [], "--workers 2": ["--workers", "2"]}


def make_dataset(work: Path, model: list[str], count: int) -> None:
    subprocess.run([str(NBSIM), "stills", *model, "--count", str(count), "--seed", "3", "--template",
                    "shot_#####.img"], cwd=work, check=True, capture_output=True)
    with open(work / "starts.jsonl", "w") as out:
        for line in (work / "shot.manifest.jsonl").read_text().splitlines():
            shot = json.loads(line)
            off = [a + (0.3 if (shot["index"] >> i) & 1 else -0.3) for i, a in enumerate(shot["misset_degrees"])]
            out.write(json.dumps({"file": shot["file"], "index": shot["index"],
                                  "start": ["-misset", *map(str, off), *START_CELL]}) + "\n")


def refine(work: Path, model: list[str], mode: list[str]) -> dict:
    began = time.perf_counter()
    done = subprocess.run([str(NBSIM), "refine", *model, "--stills", "starts.jsonl", "--refine", "misset,cell",
                           *mode], cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - began
    rows = [json.loads(line) for line in (work / "starts.refined.jsonl").read_text().splitlines()]
    truth = [json.loads(line) for line in (work / "shot.manifest.jsonl").read_text().splitlines()]
    worst = max(max(abs(g - t) for g, t in zip(r["parameters"]["misset"]["refined"], s["misset_degrees"]))
                for r, s in zip(rows, truth) if not r["error"])
    return {"exit": done.returncode, "wall_s": wall, "shots_per_s": len(rows) / wall,
            "median_fit_s": statistics.median(r["seconds"] for r in rows),
            "converged": sum(r["converged"] for r in rows), "shots": len(rows), "worst_misset_deg": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="shots per dataset")
    parser.add_argument("--out", default=str(ROOT / "reports" / "refinement"))
    args = parser.parse_args()
    results = []
    load = os.getloadavg()[0]  # what else the machine was doing: it shares the cores
    for size, flags in SIZES.items():
        model = [*CRYSTAL.split(), *flags.split()]
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "data"
            source.mkdir()
            make_dataset(source, model, args.count)
            for mode_name, mode in MODES.items():
                work = Path(tmp) / mode_name.replace(" ", "_").replace("-", "")
                shutil.copytree(source, work)
                row = {"size": size, "mode": mode_name, **refine(work, model, mode)}
                print(json.dumps(row), flush=True)
                results.append(row)
    env = environment()
    lines = ["# Per-shot refinement of stills: shots per second", "",
             f"`.venv/bin/python benchmarks/stills_refinement.py --count {args.count}` (git {env['git_revision'][:12]}, "
             f"{env['cpus']} CPUs). Each shot 0.3° off in every misset angle and 0.5% off in the cell; "
             "misset and cell refined (spot stage, then pixels); the whole `nbsim refine --stills` command timed, "
             f"start-up included. Load average when it began: {load:.1f}.", "",
             "| detector | mode | shots | converged | shots/s | median s per fit | worst misset error |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['size']} | {r['mode']} | {r['shots']} | {r['converged']} | {r['shots_per_s']:.2f} | "
                     f"{r['median_fit_s']:.1f} | {r['worst_misset_deg']:.4f}° |")
    write_report(args.out, "stills_refinement", {"environment": env, "load_average": load, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
