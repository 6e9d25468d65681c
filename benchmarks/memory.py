"""Peak memory of ``nbsim run`` against detector size, sampling, mosaic domains and budget.

    .venv/bin/python benchmarks/memory.py [--threads 2] [--out reports/benchmarks] [--quick]

The performance issue asks that memory grow linearly with the pixel count, stay flat in the
sampling (sub-pixels, sources, phi steps, domains) and honour ``--max-memory``.  Each row runs
one ``nbsim run`` in its own process (so its peak resident memory is that command's) on
variations of the suite's P3 and P4, adding ``-floatfile out.bin -nopgm -nonoise -noprogress``.
The baseline is a one-pixel render: what the interpreter, torch and numba take before any
image exists.  Results: ``memory.json`` and ``memory.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_record import environment, write_report
from suite import COMMON, PROBLEMS, _run

MiB = 2**20


def with_flags(problem: str, **flags: str) -> str:
    """The problem's flags with ``flags`` (name without its dash) replaced or added."""
    words, out, i = PROBLEMS[problem].split(), [], 0
    while i < len(words):
        name = words[i][1:]
        j = i + 1
        while j < len(words) and not words[j].startswith("-"):
            j += 1
        if name not in flags:
            out += words[i:j]
        i = j
    for name, value in flags.items():
        out += [f"-{name}", *value.split()]
    return " ".join(out)


def cases(quick: bool) -> list[tuple[str, str, str, str]]:
    """(group, label, flags, nbsim options) of every row."""
    sizes = (256, 512, 1024, 2048) if quick else (256, 512, 1024, 2048, 4096)
    rows = [("baseline", "P3, 1 pixel", with_flags("P3", detpixels="1"), "")]
    rows += [("detector", f"P3, {n}x{n}", with_flags("P3", detpixels=str(n)), "") for n in sizes]
    rows += [("sampling", f"P3 1024x1024, -oversample {k}", with_flags("P3", detpixels="1024", oversample=str(k)), "")
             for k in (1, 2, 4)]
    rows += [("sampling", "P3 1024x1024, 5x5 divergence x 5 wavelengths",
              with_flags("P3", detpixels="1024", hdivsteps="5", vdivsteps="5", dispsteps="5"), "")]
    rows += [("domains", f"P4 256x256, {d} domains, tensor engine", with_flags("P4", detpixels="256", mosaic_dom=str(d)),
              "--engine tensor") for d in (10, 100, 1000)]
    rows += [("budget", f"P3 256x256, tensor engine, --max-memory {b}", with_flags("P3", detpixels="256"),
              f"--engine tensor --max-memory {b}") for b in ("8M", "32M", "128M", "1G")]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="detectors up to 2048x2048 only")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    child_env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    nbsim = str(Path(sys.executable).with_name("nbsim"))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for group, label, flags, options in cases(args.quick):
            wall, rss, proc = _run([nbsim, "run", *f"{flags} {COMMON}".split(), *options.split()], work, child_env)
            row = {"group": group, "case": label, "flags": flags, "options": options, "command_seconds": wall,
                   "peak_rss_bytes": rss, "error": proc.stderr[-2000:] if proc.returncode else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["peak_rss_bytes"]
    detector = [(int(r["flags"].split("-detpixels ")[1].split()[0]) ** 2, r["peak_rss_bytes"]) for r in rows
                if r["group"] == "detector" and not r["error"]]
    (p0, m0), (p1, m1) = detector[-2], detector[-1]
    per_pixel = (m1 - m0) / (p1 - p0)
    record = {"environment": environment("cpu"), "threads": args.threads, "baseline_bytes": base,
              "bytes_per_pixel_at_largest": per_pixel, "results": rows}
    machine = record["environment"]
    lines = [
        "# nbsim peak memory",
        "",
        (f"`.venv/bin/python benchmarks/memory.py --threads {args.threads}{' --quick' if args.quick else ''}` "
        f"({machine['date']}, git {machine['git_revision'][:12]}, torch {machine['torch']}, {machine['cpus']} CPUs). "
        f"Whole `nbsim run` commands (float64, engine auto unless named), each with `{COMMON}`."),
        "",
        (f"Baseline (one pixel): {base / MiB:.0f} MiB. Between the two largest detectors memory grows by "
        f"{per_pixel:.1f} bytes per pixel."),
        "",
        "| group | case | command s | peak RSS | above baseline |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['group']} | {r['case']} | error: {r['error'].strip().splitlines()[-1][:80]} | | |")
            continue
        lines.append(f"| {r['group']} | {r['case']} | {r['command_seconds']:.1f} | {r['peak_rss_bytes'] / MiB:.0f} MiB | "
                     f"{(r['peak_rss_bytes'] - base) / MiB:.0f} MiB |")
    write_report(args.out, "memory", record, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
