"""Failures through the installed ``nbsim`` command: one line on stderr, no traceback, no file left.

Each case runs in an empty directory holding one earlier output, which must stay as it was.
The full-disk and read-only cases run on a small tmpfs mounted in a private mount namespace
(``unshare``), and are skipped, saying why, where the machine does not allow one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

NBSIM = shutil.which("nbsim", path=os.path.dirname(sys.executable)) or "nbsim"
BASE = "-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 64 -lambda 1 -distance 100 -noprogress".split()

CASES = {
    "distance zero": ["-distance", "0"],
    "close distance zero": ["-close_distance", "0"],
    "energy zero": ["-energy", "0"],
    "missing output directory": ["-floatfile", "/nonexistent/dir/x.bin"],
    "output is a directory": ["-intfile", "a_directory"],
    "detector too large": ["-detpixels", "1000000"],
    "budget too small": ["-detpixels", "20000", "--max-memory", "1G"],
    "nan in hkl": ["-hkl", "nan.hkl"],
    "inf in matrix": ["-mat", "inf.mat"],
    "corrupt Fdump": ["-default_F", "0"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_failure_is_one_line_and_leaves_nothing(tmp_path: Path, name: str) -> None:
    (tmp_path / "a_directory").mkdir()
    (tmp_path / "nan.hkl").write_text("0 0 1 100\n1 0 0 nan\n")
    (tmp_path / "inf.mat").write_text("0.01 0 0\n0 inf 0\n0 0 0.01\n")
    if name == "corrupt Fdump":
        (tmp_path / "Fdump.bin").write_bytes(b"garbage")
    (tmp_path / "floatimage.bin").write_bytes(b"earlier output")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = subprocess.run([NBSIM, "run", *BASE, *CASES[name]], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbsim: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing new, hidden files included, and the earlier output intact


def test_outputs_take_the_umask_and_write_through_links(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"")
    (tmp_path / "float.bin").symlink_to("real.bin")
    old = os.umask(0o022)
    try:
        subprocess.run([NBSIM, "run", *BASE, "-floatfile", "float.bin"], cwd=tmp_path, check=True,
                       capture_output=True)
    finally:
        os.umask(old)
    assert (tmp_path / "float.bin").is_symlink()
    assert (tmp_path / "real.bin").stat().st_size == 64 * 64 * 4
    for name in ("real.bin", "intimage.img", "image.pgm", "noiseimage.img"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_example_writes_files_of_mode_0644_under_umask_022(tmp_path: Path) -> None:
    subprocess.run(["sh", "-c", f'umask 022 && exec "{NBSIM}" run --example -noprogress'], cwd=tmp_path, check=True,
                   capture_output=True)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["floatimage.bin", "intimage.img", "image.pgm", "noiseimage.img"], 0o644)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_is_one_line_and_leaves_nothing(tmp_path: Path, signum: int, code: int) -> None:
    # two million mosaic domains keep the set-up busy for several seconds: the signal lands mid-run
    proc = subprocess.Popen([NBSIM, "run", *BASE, "-mosaic", "1", "-mosaic_dom", "2000000"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert stderr == "nbsim: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def _tmpfs_runner(tmp_path: Path) -> list[str]:
    """The ``unshare`` command line that runs a shell script with a private tmpfs, or a skip."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare command: cannot mount a private tmpfs")
    probe = 'mount -t tmpfs -o size=64k tmpfs "$0"'
    why = ""
    for prefix in (["unshare", "-rm"], ["unshare", "-m"]):  # as any user (user namespace), or as root
        proc = subprocess.run([*prefix, "sh", "-c", probe, str(tmp_path)], capture_output=True, text=True)
        if proc.returncode == 0:
            return prefix
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    pytest.skip(f"cannot mount a tmpfs in a private namespace here ({why})")


# a 256x256 render writes about 580 kB: a 400 kB disk takes the float image and then fills up
TMPFS_CASES = {
    "disk full": ("size=400k", "", "No space left on device"),
    "read-only file system": ("size=4m", 'mount -o remount,ro "$0"', "Read-only file system"),
}


@pytest.mark.parametrize("name", list(TMPFS_CASES))
def test_file_system_failure_is_one_line_and_leaves_nothing(tmp_path: Path, name: str) -> None:
    prefix = _tmpfs_runner(tmp_path)
    size, then, reason = TMPFS_CASES[name]
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
        mount -t tmpfs -o {size} tmpfs "$0" || exit 99
        cd "$0" && printf 'earlier output\\n' > floatimage.bin && {then or 'true'} || exit 99
        report=$1; shift
        "$@" >/dev/null 2>"$report.stderr"; echo "exit $?" > "$report"
        ls -A >> "$report" && cat floatimage.bin >> "$report"
    """
    report = tmp_path / "report.txt"
    args = [NBSIM, "run", *BASE, "-detpixels", "256"]
    proc = subprocess.run([*prefix, "sh", "-c", script, str(disk), str(report), *args], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    status, *listing = report.read_text().splitlines()
    stderr = (tmp_path / "report.txt.stderr").read_text()
    assert status == "exit 1"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbsim: error: ") and reason in lines[0], stderr
    assert listing == ["floatimage.bin", "earlier output"]  # no new file, hidden or not; the old one intact
