"""Benchmark suite: nbsim against the reference program's measured times (issue P1-P4).

    .venv/bin/python benchmarks/suite.py [--problems P1,P2,P3,P4] [--dtypes float64,float32]
                                         [--devices cpu[,cuda]] [--threads 2] [--out reports/benchmarks]

For every problem, dtype and device: the render time inside the process (best of the warm
runs; a cold first run is reported separately when it compiles), the whole-command wall time
of ``nbsim run`` and its peak resident memory (CPU) or peak allocated GPU memory.  Every run
adds ``-floatfile out.bin -nopgm -nonoise -noprogress``.  Results: ``suite.json`` and
``suite.md`` in ``--out``, with the reference program's times on this kind of machine (2
OpenMP threads) for comparison.  Each measurement runs in its own process, so that peak
memory is that measurement's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from run_record import environment, write_report  # noqa: E402

PROBLEMS = {
    "P1": "-cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -default_F 100 -distance 100 -detpixels 1024",
    "P2": ("-cell 70 80 90 75 85 95 -misset 10 20 30 -lambda 1.0 -N 10 -default_F 100 -distance 100 "
           "-detpixels 512 -mosaic 0.5 -mosaic_dom 10 -phi 0 -osc 0.5 -phisteps 5 -oversample 2"),
    "P3": ("-cell 100 100 100 90 90 90 -lambda 1.0 -N 10 -default_F 100 -distance 200 -detpixels 2048 "
           "-hdivrange 0.5 -vdivrange 0.5 -hdivsteps 3 -vdivsteps 3 -dispersion 1 -dispsteps 3"),
    "P4": ("-cell 100 100 100 90 90 90 -lambda 6.2 -N 5 -default_F 100 -distance 100 -detpixels 1024 "
           "-mosaic 0.5 -mosaic_dom 1000"),
}
COMMON = "-floatfile out.bin -nopgm -nonoise -noprogress"
#: whole-command seconds of the reference program, 2 OpenMP threads, this kind of machine
REFERENCE_SECONDS = {"P1": 0.09, "P2": 2.3, "P3": 11.0, "P4": 37.0}

INNER = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from nbsim import build_model, config_from_argv, select_physics
from nbsim.engines.pipeline import render
argv, dtype, device = sys.argv[1].split(), getattr(torch, sys.argv[2]), sys.argv[3]
engine = sys.argv[5]
config = config_from_argv(argv)
physics = select_physics(config)
times = []
for _ in range(int(sys.argv[6])):
    model = build_model(config, device=device, dtype=dtype)
    if device.startswith("cuda"):
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    with torch.no_grad():
        image = render(model, physics, engine=engine).image
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
print(json.dumps({"times": times, "gpu_peak_bytes": peak, "sum": float(image.double().sum())}))
"""


def _run(cmd, cwd, env) -> tuple[float, int, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS bytes, completed process) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024, subprocess.CompletedProcess(cmd, code, out, err)


def measure(name, dtype, device, threads, engine, repeats, work) -> dict:
    argv = f"{PROBLEMS[name]} {COMMON}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    _, inner_rss, proc = _run([sys.executable, "-c", INNER, argv, dtype, device, str(threads), engine,
                               str(repeats)], work, env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    nbsim = str(Path(sys.executable).with_name("nbsim"))
    wall, rss, cmd = _run([nbsim, "run", *argv.split(), "--dtype", dtype, "--device", device,
                           "--engine", engine], work, env)
    if cmd.returncode != 0:
        return {"error": cmd.stderr[-2000:]}
    times = inner["times"]
    return {
        "render_seconds": min(times[1:]) if len(times) > 1 else times[0], "first_render_seconds": times[0],
        "command_seconds": wall, "command_peak_rss_bytes": rss, "render_process_peak_rss_bytes": inner_rss,
        "gpu_peak_bytes": inner["gpu_peak_bytes"], "image_sum": inner["sum"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="P1,P2,P3,P4")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--devices", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engine", default="auto", choices=["auto", "tensor", "compiled", "numba"])
    parser.add_argument("--repeats", type=int, default=2, help="renders per process (the first may compile)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    devices = args.devices.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.problems.split(","):
            for device in devices:
                for dtype in args.dtypes.split(","):
                    result = measure(name, dtype, device, args.threads, args.engine, args.repeats, work)
                    row = {"problem": name, "dtype": dtype, "device": device, "threads": args.threads,
                           "engine": args.engine, "reference_seconds": REFERENCE_SECONDS[name], **result}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    cuda = next((d for d in devices if d.startswith("cuda")), None)
    record = {"environment": environment(cuda or "cpu"), "problems": PROBLEMS, "results": rows}
    lines = [
        "# nbsim benchmark suite",
        "",
        f"`.venv/bin/python benchmarks/suite.py --problems {args.problems} --dtypes {args.dtypes} "
        f"--devices {args.devices} --threads {args.threads} --engine {args.engine}` "
        f"({record['environment']['date']}, git {record['environment']['git_revision'][:12]}, "
        f"torch {record['environment']['torch']}, {record['environment']['cpus']} CPUs).",
        "",
        "Reference: the C program's whole-command time with 2 OpenMP threads on this kind of machine.",
        "",
        "| problem | dtype | device | render s (warm) | first render s | command s | reference s | "
        "render / reference | peak memory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['problem']} | {r['dtype']} | {r['device']} | error | | | | | |")
            continue
        peak = r["gpu_peak_bytes"] or r["command_peak_rss_bytes"]
        lines.append(
            f"| {r['problem']} | {r['dtype']} | {r['device']} | {r['render_seconds']:.2f} | "
            f"{r['first_render_seconds']:.2f} | {r['command_seconds']:.2f} | {r['reference_seconds']:.2f} | "
            f"{r['render_seconds'] / r['reference_seconds']:.2f} | {peak / 2**20:.0f} MiB |"
        )
    write_report(args.out, "suite", record, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
