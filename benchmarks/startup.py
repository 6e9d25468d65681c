"""Where the start-up time of ``nbsim run`` goes: each stage of a P2 command as a whole process.

    .venv/bin/python benchmarks/startup.py [--runs 5] [--trees DIR,DIR] [--out reports/benchmarks]

Each row is a separate process, timed from outside (wall clock, best of ``--runs``), that
does one more stage than the row above it: the interpreter alone, then importing torch, then
nbsim's command line with its plugins loaded, then numba and the CPU loop loaded from its
on-disk cache, then P2 (``benchmarks/suite.py``) rendered without its output file, then
the whole command.  The difference between rows is what that stage costs.  ``--trees`` runs
the same rows with each tree's own ``.venv`` (for example an older commit's worktree beside
this one), so that before and after are measured in the same session.
Results: ``startup.json`` and ``startup.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_record import environment, write_report
from suite import PROBLEMS

P2 = PROBLEMS["P2"].split()
#: the modules the stages import, under their names before and after the subpackages (1c3f0e4),
#: so that an older tree can be measured beside this one
RENDER = "try:\n    from nbsim.engines.pipeline import render\nexcept ImportError:\n    from nbsim.pipeline import render\n"
PLUGINS = ("try:\n    from nbsim.plugins.system import load_plugins\nexcept ImportError:\n"
           "    from nbsim.plugins import load_plugins\nload_plugins()\n")
LOOP = "try:\n    from nbsim.engines import numba_engine as cpu\nexcept ImportError:\n    from nbsim import cpu\n"
RENDER_P2 = """
import torch
from nbsim import Simulation
""" + RENDER + f"""sim = Simulation.from_argv({P2!r})
with torch.no_grad():
    render(sim.model(), sim.physics)
"""
#: (stage, what the process runs: a Python snippet, or an nbsim command line)
STAGES = [
    ("interpreter", ("python", "pass")),
    ("+ import torch", ("python", "import torch")),
    ("+ nbsim CLI and plugins", ("python", "import torch\nfrom nbsim_cli import app\nfrom nbsim import runner\n" + PLUGINS)),
    ("+ numba and the CPU loop", ("python", "import torch\nfrom nbsim_cli import app\nfrom nbsim import runner\n" + LOOP
                                             + PLUGINS + "cpu.loop()")),
    ("+ set-up and render of P2", ("python", "from nbsim_cli import app\n" + RENDER_P2)),
    ("whole command (P2, float image)", ("nbsim", ("run", *P2, "-floatfile", "out.bin", "-nopgm", "-nonoise",
                                                   "-noprogress"))),
]


def best_wall(argv: list[str], runs: int, cwd: str) -> float:
    subprocess.run(argv, cwd=cwd, capture_output=True, check=True)  # warm-up: page cache, numba cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(tree: Path, runs: int) -> list[float]:
    python, nbsim = str(tree / ".venv" / "bin" / "python"), str(tree / ".venv" / "bin" / "nbsim")
    with tempfile.TemporaryDirectory() as work:
        return [best_wall([python, "-c", what] if kind == "python" else [nbsim, *what], runs, work)
                for _, (kind, what) in STAGES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trees", default=str(ROOT), help="comma-separated source trees, each with its .venv")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args()
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    columns = {str(t): measure(t, args.runs) for t in trees}
    revisions = {str(t): subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=t, capture_output=True,
                                        text=True).stdout.strip() for t in trees}
    record = {"environment": environment(), "runs": args.runs, "stages": [s for s, _ in STAGES],
              "trees": {t: {"revision": revisions[t], "seconds": columns[t]} for t in columns}}
    head = " | ".join(f"{revisions[t]} s | stage s" for t in columns)
    lines = ["# Start-up of `nbsim run`: where the time goes", "",
             f"Each row a separate process doing one stage more than the row above (best of {args.runs} "
             "wall-clock runs after a warm-up; `benchmarks/startup.py`); \"stage\" is the difference from the "
             "row above. P2 is `benchmarks/suite.py`'s (C program: 2.3 s with 2 threads).", "",
             f"| stage | {head} |", "|---|" + "---|---|" * len(columns)]
    for i, (stage, _) in enumerate(STAGES):
        cells = []
        for t in columns:
            total = columns[t][i]
            step = total - columns[t][i - 1] if 0 < i < len(STAGES) - 1 else total
            cells.append(f"{total:.2f} | {step:.2f}" if 0 < i < len(STAGES) - 1 else f"{total:.2f} | -")
        lines.append(f"| {stage} | {' | '.join(cells)} |")
    print("\n".join(lines))
    write_report(args.out, "startup", record, lines)


if __name__ == "__main__":
    main()
