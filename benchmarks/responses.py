"""The detector-response chain on a 4096 x 4096 panel, against the render of P1 on the same machine.

    .venv/bin/python benchmarks/responses.py [--repeats 3] [--threads 2] [--out reports/benchmarks]

Times ``nbsim.outputs.response.apply_chain`` (what ``nbsim run --response ...`` runs after the
render) for each response alone and for the whole chain
psf-gauss -> poisson -> gain -> calibration -> flicker -> readout -> pedestal -> saturation (with
the reference's Poisson generator, and with ``poisson:rng=parallel``), on
one panel of 4096 x 4096 pixels of 0.1 mm, and the warm render of the suite's P1 (1024 x 1024)
and of P1 on 4096 x 4096 pixels of 0.025 mm (the same detector area) in the same process:
best of ``--repeats``. Results: ``responses.json`` and ``responses.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_record import environment, write_report  # noqa: E402
from suite import PROBLEMS  # noqa: E402

import nbsim  # noqa: E402
from nbsim.engines.pipeline import render  # noqa: E402
from nbsim.model.build import build_model  # noqa: E402
from nbsim.outputs import response  # noqa: E402
from nbsim.physics import jit  # noqa: E402
from nbsim.plugins.selection import select_physics  # noqa: E402
from nbsim.plugins.system import load_plugins  # noqa: E402

PANEL = "-cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -default_F 100 -distance 100 -detpixels 4096 -pixel 0.1 -seed 3"
CHAIN = ["psf-gauss:fwhm=172", "poisson", "gain:adu_per_photon=2", "calibration:percent=2", "flicker:percent=1",
         "readout:sigma=3", "pedestal:adu=40", "saturation:max=65535"]
P1_LARGE = PROBLEMS["P1"].replace("-detpixels 1024", "-detpixels 4096 -pixel 0.025")


def best(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def render_seconds(flags: str, repeats: int) -> float:
    config = nbsim.config_from_argv(shlex.split(flags + " -noprogress"))
    model = build_model(config)
    physics = select_physics(config, system=load_plugins())
    with torch.no_grad():
        render(model, physics)  # warm: compiles or loads the CPU loop
        return best(lambda: render(model, physics), repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    jit.numba().set_num_threads(args.threads)
    system = load_plugins()
    config = nbsim.config_from_argv(shlex.split(PANEL + " -noprogress"))
    model = build_model(config)
    rng = np.random.default_rng(1)
    image = rng.gamma(0.5, 20.0, size=(4096, 4096)).astype(np.float32)  # a few photons a pixel, spotty
    rows = []
    fast_chain = [("poisson:rng=parallel" if step == "poisson" else step) for step in CHAIN]
    for spec in [*CHAIN, "poisson:rng=parallel", " -> ".join(CHAIN), " -> ".join(fast_chain)]:
        chain = response.select_chain(system, spec.split(" -> "))
        seconds = best(lambda: response.apply_chain(chain, image, config, model), args.repeats)
        rows.append({"responses": spec, "seconds": seconds})
        print(rows[-1], flush=True)
    renders = {"P1 (1024 x 1024)": render_seconds(PROBLEMS["P1"], args.repeats),
               "P1 on 4096 x 4096 pixels": render_seconds(P1_LARGE, args.repeats)}
    print(renders, flush=True)
    record = {"environment": environment("cpu"), "threads": args.threads, "chain": rows, "renders": renders,
              "panel": PANEL, "p1_large": P1_LARGE}
    env = record["environment"]
    lines = [
        "# Detector responses on a 4096 x 4096 panel",
        "",
        f"`.venv/bin/python benchmarks/responses.py --repeats {args.repeats} --threads {args.threads}` "
        f"({env['date']}, git {env['git_revision'][:12]}, torch {env['torch']}, {env['cpus']} CPUs, "
        f"{args.threads} torch threads); best of {args.repeats}. The image: float32 photon counts of a gamma "
        "distribution (mean 10), on one panel of 0.1 mm pixels.",
        "",
        "| responses | seconds |",
        "|---|---|",
        *(f"| {r['responses']} | {r['seconds']:.3f} |" for r in rows),
        "",
        "| render (warm, same process) | seconds |",
        "|---|---|",
        *(f"| {name} | {seconds:.3f} |" for name, seconds in renders.items()),
        "",
        f"P1 on 4096 x 4096: `{P1_LARGE}`.",
    ]
    write_report(args.out, "responses", record, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
