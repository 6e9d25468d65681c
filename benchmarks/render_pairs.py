"""Render times of this tree against another checkout, interleaved, in one session.

    .venv/bin/python benchmarks/render_pairs.py --base ../base [--new .] [--problems P2,P3] [--engines auto,tensor]

Each round runs one process per tree (this tree first, then the base, its own ``.venv``);
a process renders every (problem, engine, dtype) ``--repeats`` times after one warm-up
render and reports the best. Whole commands are the suite's business (``suite.py``); this
measures the render alone, which the suite's two rounds time too noisily on a small
machine. Writes ``reports/benchmarks/<stem>.{json,md}`` (default stem ``render_pairs``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))

from run_record import environment, write_report  # noqa: E402
from suite import PROBLEMS  # noqa: E402

#: what one process runs: the API that every tree since the engines landed has
INNER = r"""
import json, sys, time, torch
from nbsim import build_model, select_physics
try:
    from nbsim import config_from_argv
    from nbsim.engines.pipeline import render
except ImportError:  # a tree from before the subpackages (1c3f0e4)
    from nbsim import RunConfig
    from nbsim.pipeline import render
    config_from_argv = RunConfig.from_nanobragg_argv
jobs, repeats, threads = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
out = []
for argv, engine, dtype in jobs:
    config = config_from_argv(argv.split())
    physics = select_physics(config)
    m = build_model(config, dtype=getattr(torch, dtype))
    image = render(m, physics, engine=engine).image  # warm-up (compiles where needed)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        image = render(m, physics, engine=engine).image
        best = min(best, time.perf_counter() - t)
    out.append({"seconds": best, "sum": float(image.double().sum())})
print(json.dumps(out))
"""


def _process(tree: Path, jobs, repeats: int, threads: int) -> list[dict]:
    python = tree / ".venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", INNER, json.dumps(jobs), str(repeats), str(threads)],
                          cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="checkout to compare with (its own .venv)")
    parser.add_argument("--new", default=str(ROOT), help="checkout measured as new (default: this one)")
    parser.add_argument("--problems", default="P1,P2,P3,P4")
    parser.add_argument("--engines", default="auto,tensor")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    parser.add_argument("--stem", default="render_pairs", help="report file name, without extension")
    args = parser.parse_args()
    base, new_tree = Path(args.base).resolve(), Path(args.new).resolve()
    jobs = [(PROBLEMS[p], e, d) for p in args.problems.split(",") for e in args.engines.split(",")
            for d in args.dtypes.split(",")]
    labels = [f"{p} {e} {d}" for p in args.problems.split(",") for e in args.engines.split(",")
              for d in args.dtypes.split(",")]
    times = {"new": [], "base": []}
    for _ in range(args.rounds):
        for tree, key in ((new_tree, "new"), (base, "base")):
            times[key].append(_process(tree, jobs, args.repeats, args.threads))
    rows = []
    for i, label in enumerate(labels):
        new = [r[i]["seconds"] for r in times["new"]]
        old = [r[i]["seconds"] for r in times["base"]]
        same = abs(times["new"][0][i]["sum"] - times["base"][0][i]["sum"]) <= 1e-9 * abs(times["base"][0][i]["sum"])
        rows.append({"job": label, "new": new, "base": old, "ratio": min(new) / min(old), "same_sum": same})
    base_rev, new_rev = (subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                                        text=True).stdout.strip() for tree in (base, new_tree))
    lines = [f"# Render times: {new_rev} against {base_rev}", "",
             f"`benchmarks/render_pairs.py --base <checkout of {base_rev}>`: {args.rounds} rounds, one process per "
             f"tree per round (this tree first), best of {args.repeats} renders after a warm-up, "
             f"{args.threads} threads.", "",
             "| job | new s (rounds) | base s (rounds) | best new / best base | image sums equal |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['job']} | {' '.join(f'{x:.3f}' for x in r['new'])} | "
                     f"{' '.join(f'{x:.3f}' for x in r['base'])} | {r['ratio']:.2f} | {'yes' if r['same_sum'] else 'NO'} |")
    write_report(args.out, args.stem, {"environment": environment(), "base": base_rev, "new": new_rev, "rows": rows}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
