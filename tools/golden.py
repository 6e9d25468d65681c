"""Run golden cases through ``nbsim run`` and compare them as ../shared/golden/README.md says.

Used by the test suite (``tests/test_golden.py``) and by the parity report
(``tools/parity_report.py``).  A case runs in a fresh directory holding a copy of the golden
inputs, either as a subprocess of the installed ``nbsim`` command or in-process through the
same click command object (no interpreter start-up per case).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np

GOLDEN = Path(os.environ.get("NBSIM_GOLDEN", Path(__file__).resolve().parents[2] / "shared" / "golden"))
NBSIM = shutil.which("nbsim") or str(Path(sys.executable).with_name("nbsim"))

STAT_LINES = (
    re.compile(r"^max_I = (\S+)\s+at"),
    re.compile(r"^mean= (\S+) rms= (\S+) rmsd= (\S+)"),
)


def case_names() -> list[str]:
    return sorted(p.name for p in (GOLDEN / "cases").iterdir() if (p / "case.json").exists())


def load_case(name: str) -> dict:
    return json.loads((GOLDEN / "cases" / name / "case.json").read_text())


@attrs.frozen
class Comparison:
    case: str
    policy: str
    dtype: str
    reference: str
    max_rel_error: float  # max |got-ref| / max|ref|
    pixels_off: int  # pixels beyond the tolerance
    pixels: int
    int_ok: bool | None
    pgm_ok: bool | None
    noise_ok: bool | None
    noise_identical: float | None
    stats_ok: bool | None
    details: tuple[str, ...]
    sha256: dict

    @property
    def ok(self) -> bool:
        """Within the README's tolerance: the float image, and for float64 runs every other output."""
        if self.pixels_off != 0:
            return False
        if self.dtype == "float32":  # the README gives float32 a float-image tolerance only
            return True
        return all(x in (None, True) for x in (self.int_ok, self.pgm_ok, self.noise_ok, self.stats_ok))


def case_argv(name: str, *, policy: str = "spec", dtype: str = "float64", extra=()) -> list[str]:
    case = load_case(name)
    argv = ["run", *case["argv"], "-floatfile", "float.bin", "-intfile", "int.img", "-noisefile", "noise.img",
            "-pgmfile", "image.pgm", "-noprogress", "--phi-policy", policy, "--dtype", dtype, *extra]
    if policy == "c-parity":
        argv += ["--c-threads", str(case.get("omp_threads", 1))]
    return argv


def prepare(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for f in (GOLDEN / "inputs").iterdir():
        shutil.copy(f, workdir / f.name)


def run_case(name: str, workdir: Path, *, policy: str = "spec", dtype: str = "float64", extra=(),
             in_process: bool = False) -> subprocess.CompletedProcess:
    prepare(workdir)
    argv = case_argv(name, policy=policy, dtype=dtype, extra=extra)
    if not in_process:
        return subprocess.run([NBSIM, *argv], cwd=workdir, capture_output=True, text=True)
    from click.testing import CliRunner

    from nbsim_cli.app import cli

    previous = os.getcwd()
    os.chdir(workdir)
    try:
        result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, result.stderr)


def _stats(text: str) -> list[float]:
    values = []
    for line in text.splitlines():
        for pat in STAT_LINES:
            m = pat.match(line)
            if m:
                values += [float(x) for x in m.groups()]
    return values


def _smv(path: Path):
    data = path.read_bytes()
    end = data.index(b"}")
    header = dict(re.findall(r"([A-Za-z0-9_]+)=([^;\n]*)", data[:end].decode()))
    size = int(header.get("HEADER_BYTES", 512))
    pixels = np.frombuffer(data[size:], dtype="<u2")
    return header, pixels


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def compare(name: str, workdir: Path, proc: subprocess.CompletedProcess, *, policy: str, dtype: str) -> Comparison:
    case = load_case(name)
    cdir = GOLDEN / "cases" / name
    spec_ref = cdir / "float.spec.bin"
    use_spec = policy == "spec" and spec_ref.exists()
    ref_path = spec_ref if use_spec else cdir / "float.bin"
    details = []
    if proc.returncode != 0:
        return Comparison(name, policy, dtype, ref_path.name, float("inf"), -1, 0, None, None, None, None, None,
                          (f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}",), {})
    ref = np.fromfile(ref_path, dtype="<f4").astype(np.float64)
    got = np.fromfile(workdir / "float.bin", dtype="<f4").astype(np.float64)
    sha = {"reference": _sha(ref_path), "float.bin": _sha(workdir / "float.bin")}
    if got.shape != ref.shape:
        return Comparison(name, policy, dtype, ref_path.name, float("inf"), -1, ref.size, None, None, None, None, None,
                          (f"size {got.size} != {ref.size}",), sha)
    peak = np.abs(ref).max()
    rel, absol = (1e-5, 1e-6) if dtype == "float64" else (1e-3, 1e-4)
    off = np.abs(got - ref) > rel * np.abs(ref) + absol * peak
    max_rel = float(np.abs(got - ref).max() / peak) if peak > 0 else float(np.abs(got - ref).max())
    if off.any():
        k = int(np.flatnonzero(off)[0])
        details.append(f"first pixel off: {k} got {got[k]!r} ref {ref[k]!r}")
    int_ok = pgm_ok = noise_ok = stats_ok = None
    noise_identical = None
    if not use_spec:
        kept = set(case.get("outputs", []))
        if "int.img" in kept:
            h_ref, p_ref = _smv(cdir / "int.img")
            h_got, p_got = _smv(workdir / "int.img")
            sha["int.img"] = _sha(workdir / "int.img")
            diff = np.abs(p_got.astype(np.int64) - p_ref.astype(np.int64)) if p_got.shape == p_ref.shape else None
            int_ok = diff is not None and diff.max() <= 1 and (diff > 0).sum() <= 1e-4 * diff.size
            for key, value in h_ref.items():
                mine = h_got.get(key)
                if mine is None:
                    int_ok = False
                    details.append(f"int.img header lacks {key}")
                    continue
                try:
                    a = [float(x) for x in value.split(",")]
                    b = [float(x) for x in mine.split(",")]
                    same = len(a) == len(b) and all(abs(x - y) <= 1e-5 * max(abs(x), abs(y)) for x, y in zip(a, b))
                except ValueError:
                    same = value.strip() == mine.strip()
                if not same:
                    int_ok = False
                    details.append(f"int.img header {key}: {mine} != {value}")
        if "image.pgm" in kept:
            sha["image.pgm"] = _sha(workdir / "image.pgm")
            pgm_ok = (workdir / "image.pgm").read_bytes() == (cdir / "image.pgm").read_bytes()
        if "noise.img" in kept:
            _, n_ref = _smv(cdir / "noise.img")
            _, n_got = _smv(workdir / "noise.img")
            sha["noise.img"] = _sha(workdir / "noise.img")
            noise_identical = float((n_ref == n_got).mean()) if n_ref.shape == n_got.shape else 0.0
            noise_ok = noise_identical >= 0.999
        want = _stats((cdir / "stdout.txt").read_text())
        have = _stats(proc.stdout)
        stats_ok = len(want) == len(have) == 4 and all(
            abs(a - b) <= 2e-5 * max(abs(a), abs(b)) for a, b in zip(want, have))
        if not stats_ok:
            details.append(f"statistics {have} != {want}")
    return Comparison(name, policy, dtype, ref_path.name, max_rel, int(off.sum()), ref.size, int_ok, pgm_ok, noise_ok,
                      noise_identical, stats_ok, tuple(details), sha)
