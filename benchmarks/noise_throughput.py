"""Noise-image throughput: the C-identical generator and the counter-based parallel one.

    .venv/bin/python benchmarks/noise_throughput.py [--pixels 4096] [--threads 1] [--out reports/benchmarks]

Renders ``-cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -default_F 100 -distance 100`` on a
square detector (4096 x 4096 by default), scales it as a fluence change would so that the
mean pixel is 10 photons (many pixels then take the reference's rejection path, mean >= 12),
and times both noise generators on ``--threads`` threads (the reference's is serial).  Writes JSON and Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nbsim import build_model, config_from_argv, select_physics
from nbsim.engines.pipeline import render
from nbsim.outputs.noise import noise_counts
from nbsim.physics import jit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from run_record import environment, write_report  # noqa: E402

ARGV = "-cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -default_F 100 -distance 100 -seed 1"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    jit.numba().set_num_threads(args.threads)
    config = config_from_argv(f"{ARGV} -detpixels {args.pixels}".split())
    t0 = time.perf_counter()
    with torch.no_grad():
        image = render(build_model(config), select_physics(config)).image.to(torch.float32).numpy()
    render_s = time.perf_counter() - t0
    factor = 10.0 / float(image.mean(dtype=np.float64))
    image = (image * np.float32(factor)).astype(np.float32)
    n = image.size
    results = {}
    for method in ("c", "parallel"):
        noise_counts(image[:64, :64], config, method=method)  # compile / warm up
        t = time.perf_counter()
        counts = noise_counts(image, config, method=method)
        seconds = time.perf_counter() - t
        results[method] = {"seconds": seconds, "pixels_per_second": n / seconds,
                           "mean_counts": float(counts.mean())}
        print(f"{method:6s} {n / seconds / 1e6:6.2f} M pixels/s ({seconds:.2f} s)", flush=True)
    record = {
        "argv": f"{ARGV} -detpixels {args.pixels}", "pixels": n, "fluence_factor": factor,
        "mean_photons": float(image.mean(dtype=np.float64)),
        "fraction_at_or_above_12": float((image >= 12).mean()),
        "render_seconds": render_s, "threads": args.threads, "results": results,
        "environment": environment(),
    }
    lines = [
        "# Noise-image throughput",
        "",
        f"`.venv/bin/python benchmarks/noise_throughput.py --pixels {args.pixels}`: {args.pixels}x{args.pixels} image "
        f"of `{ARGV}`, scaled (fluence x {factor:.4g}) to a mean of {record['mean_photons']:.3g} photons; "
        f"{100 * record['fraction_at_or_above_12']:.1f}% of pixels at or above 12 (rejection path). "
        f"{args.threads} thread(s).",
        "",
        "| generator | pixels/s | seconds |",
        "|---|---|---|",
    ]
    for method, label in (("c", "C-identical (`--noise-rng c`, numba)"), ("parallel", "counter-based (`--noise-rng parallel`, numba)")):
        r = results[method]
        lines.append(f"| {label} | {r['pixels_per_second'] / 1e6:.2f} M | {r['seconds']:.2f} |")
    lines.append("")
    lines.append(f"Environment: {record['environment']}")
    write_report(args.out, f"noise_throughput-{args.threads}-threads" if args.threads != 1 else "noise_throughput",
                 record, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
