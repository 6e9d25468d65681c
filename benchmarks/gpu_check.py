"""GPU checks in one process (CUDA start-up paid once): timings and golden parity on the device.

    python benchmarks/gpu_check.py [--out reports/gpu] [--quick] [--device cuda] [--problems P4,P3,P2]

1. P4 and P3 of the benchmark suite in float32 (and float64) on ``cuda``: render time, warm
   (best of repeats after a first, possibly compiling, run), with the tensor and the
   compiled engines, and peak allocated GPU memory; for P4 float32 also one render in a new
   process (compiled code from the disk cache), which is what a command pays.
2. Stills per second (``--stills``): 512 x 512 and 1024 x 1024 stills with 10 and 100 mosaic
   domains, float32, rendered together (``nbsim.engines.batch``) and one at a time.
3. Golden parity on ``cuda`` in float64, both phi policies, every case (``--quick``: a third).
Writes ``gpu-check.json`` and ``gpu-check.md`` into ``--out``, with what the device reported.
Meant to fit one 10-minute device run; it writes partial results as it goes.  On a lent
device machine, ``benchmarks/gpu_device.sh`` installs nbsim there and runs this script.
``--device cpu --problems P2 --quick`` rehearses it without a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite import INNER, PROBLEMS, REFERENCE_SECONDS  # noqa: E402

import golden  # noqa: E402


def timed_render(name: str, dtype: torch.dtype, engine: str, device: str, repeats: int = 3) -> dict:
    from nbsim import build_model, config_from_argv, select_physics
    from nbsim.engines.pipeline import render

    config = config_from_argv(PROBLEMS[name].split())
    physics = select_physics(config)
    cuda = device.startswith("cuda")
    times = []
    for _ in range(repeats):
        model = build_model(config, device=device, dtype=dtype)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.no_grad():
            image = render(model, physics, engine=engine).image
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"problem": name, "dtype": str(dtype).replace("torch.", ""), "engine": engine, "first_seconds": times[0],
            "warm_seconds": min(times[1:]), "peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else 0,
            "reference_seconds": REFERENCE_SECONDS[name], "image_sum": float(image.double().sum())}


def fresh_process_render(name: str, dtype: torch.dtype, engine: str, device: str) -> float:
    """Seconds of one render in a new process (compiled code then comes from the disk cache):
    what a command pays, which decides from what size compiling pays (``compiled.THRESHOLD``)."""
    proc = subprocess.run([sys.executable, "-c", INNER, PROBLEMS[name], str(dtype).replace("torch.", ""), device,
                           str(torch.get_num_threads()), engine, "1"], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])["times"][0]


#: stills throughput: (label, nanoBragg flags)
STILLS = {
    f"{pixels} x {pixels}, {domains} domains": (f"-cell 70 80 90 75 85 95 -lambda 1 -N 10 -default_F 100 -distance 100 "
                                                f"-detpixels {pixels} -pixel {51.2 / pixels} -oversample 1 "
                                                f"-mosaic 0.5 -mosaic_domains {domains} -noprogress")
    for pixels in (512, 1024) for domains in (10, 100)
}


def stills_per_second(flags: str, device: str, batch: int | None, count: int = 16) -> dict:
    """Stills of ``flags`` rendered by a dataset's renderer (float32, tensor engine), ``batch``
    at a time (None: as memory allows): images per second after a warm-up image."""
    from nbsim.datasets import plan_from_argv
    from nbsim.datasets.render import Renderer
    from nbsim.runner import RunOptions

    options = RunOptions(device=device, dtype="float32", engine="tensor", batch=batch)
    plan = plan_from_argv("stills", flags.split() + ["-nonoise"], options, seed=1, count=count + 1)
    renderer = Renderer(plan.config(0), options)
    renderer.image(plan.config(0))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in renderer.images(plan.config(k) for k in range(1, count + 1)):
        pass
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": seconds, "images_per_second": count / seconds, "batch": batch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "reports" / "gpu"))
    parser.add_argument("--quick", action="store_true", help="golden parity on a third of the cases")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a rehearsal")
    parser.add_argument("--problems", default="P4,P3,P2", help="which timings to take")
    parser.add_argument("--stills", default=",".join(STILLS), help="which stills throughputs to take (labels, "
                        "comma-separated; empty: none)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    record = {"device": torch.cuda.get_device_name() if cuda else args.device,
              "capability": torch.cuda.get_device_capability() if cuda else None,
              "torch": torch.__version__, "cuda": torch.version.cuda, "timings": [], "stills": [], "parity": []}

    def save():
        (out / "gpu-check.json").write_text(json.dumps(record, indent=1) + "\n")

    for name, dtype, engine in (("P4", torch.float32, "compiled"), ("P4", torch.float32, "tensor"),
                                ("P3", torch.float32, "compiled"), ("P3", torch.float32, "tensor"),
                                ("P4", torch.float64, "tensor"), ("P2", torch.float64, "tensor")):
        if name not in args.problems.split(","):
            continue
        try:
            row = timed_render(name, dtype, engine, args.device)
        except Exception as exc:  # keep going: a failed measurement is a result too
            row = {"problem": name, "dtype": str(dtype), "engine": engine, "error": f"{type(exc).__name__}: {exc}"}
        if "error" not in row and name == "P4" and dtype == torch.float32:
            try:
                row["fresh_process_seconds"] = fresh_process_render(name, dtype, engine, args.device)
            except subprocess.CalledProcessError as exc:
                row["fresh_process_error"] = exc.stderr[-500:]
        record["timings"].append(row)
        print(json.dumps(row), flush=True)
        save()
    for label in filter(None, args.stills.split(",")):
        for batch in (None, 1):
            try:
                row = {"stills": label, **stills_per_second(STILLS[label], args.device, batch)}
            except Exception as exc:  # keep going: a failed measurement is a result too
                row = {"stills": label, "batch": batch, "error": f"{type(exc).__name__}: {exc}"}
            record["stills"].append(row)
            print(json.dumps(row), flush=True)
            save()
    names = golden.case_names()
    if args.quick:
        names = names[::3]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for policy in ("spec", "c-parity"):
                work = Path(tmp) / f"{name}-{policy}"
                proc = golden.run_case(name, work, policy=policy, in_process=True, extra=("--device", args.device))
                result = golden.compare(name, work, proc, policy=policy, dtype="float64")
                record["parity"].append({"case": name, "policy": policy, "ok": result.ok,
                                         "max_rel_error": result.max_rel_error, "pixels_off": result.pixels_off,
                                         "details": list(result.details)})
            save()
    ok = sum(p["ok"] for p in record["parity"])
    lines = [f"# GPU check on {record['device']}", "",
             f"torch {record['torch']}, CUDA {record['cuda']}; `benchmarks/gpu_check.py`.", "",
             ("| problem | dtype | engine | first s | warm s | new process s | reference (C, 2 CPU threads) s | "
              "speed-up | peak GPU memory |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in record["timings"]:
        if "error" in r:
            lines.append(f"| {r['problem']} | {r['dtype']} | {r['engine']} | error: {r['error'][:80]} | | | | | |")
            continue
        fresh = f"{r['fresh_process_seconds']:.3f}" if "fresh_process_seconds" in r else ""
        lines.append(f"| {r['problem']} | {r['dtype']} | {r['engine']} | {r['first_seconds']:.3f} | "
                     f"{r['warm_seconds']:.4f} | {fresh} | {r['reference_seconds']} | "
                     f"{r['reference_seconds'] / r['warm_seconds']:.0f}x | {r['peak_gpu_bytes'] / 2**20:.0f} MiB |")
    if record["stills"]:
        lines += ["", "| stills (float32, tensor engine) | together or alone | images/s |", "|---|---|---|"]
        lines += [f"| {r['stills']} | {'alone' if r['batch'] == 1 else 'together'} | "
                  + (f"{r['images_per_second']:.1f} |" if "error" not in r else f"error: {r['error'][:80]} |")
                  for r in record["stills"]]
    lines += ["", f"Golden parity on {args.device}, float64: {ok}/{len(record['parity'])} (case x policy) within tolerance."]
    lines += [f"- {p['case']} {p['policy']}: max error {p['max_rel_error']:.2e} of the maximum; "
              f"{'; '.join(p['details'])[:200]}" for p in record["parity"] if not p["ok"]]
    (out / "gpu-check.md").write_text("\n".join(lines) + "\n")
    save()
    return 0 if ok == len(record["parity"]) else 1


if __name__ == "__main__":
    sys.exit(main())
