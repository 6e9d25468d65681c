"""nbsim.io.atomic: a run's files are written all together or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbsim.errors import OutputError
from nbsim.io import atomic


def _outputs(directory: Path) -> list[atomic.Output]:
    return [atomic.Output(str(directory / name), data, flag) for name, data, flag in (
        ("float.bin", b"f" * 1000, "-floatfile"), ("int.img", b"i" * 500, "-intfile"), ("noise.img", b"n", "-noisefile"))]


@pytest.fixture(params=["unnamed", "hidden"])
def staging(request, monkeypatch):
    """Both ways of staging: unnamed files (O_TMPFILE) and the hidden-file fallback."""
    if request.param == "unnamed" and not atomic._O_TMPFILE:
        pytest.skip("this platform has no O_TMPFILE")
    if request.param == "hidden":
        monkeypatch.setattr(atomic, "_O_TMPFILE", 0)
    return request.param


def test_all_files_written_with_the_umask_mode(tmp_path, staging):
    (tmp_path / "int.img").write_bytes(b"old")
    old = os.umask(0o027)
    try:
        atomic.write_all(_outputs(tmp_path))
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.bin", "int.img", "noise.img"]
    assert (tmp_path / "float.bin").read_bytes() == b"f" * 1000 and (tmp_path / "int.img").read_bytes() == b"i" * 500
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o640}


def test_a_failure_leaves_nothing_new_and_old_files_intact(tmp_path, staging, monkeypatch):
    (tmp_path / "int.img").write_bytes(b"old")
    writes = []
    real_write = atomic._Staged.write

    def failing_write(self, data):
        writes.append(self.shown)
        if len(writes) == 3:
            raise OutputError(f"{self.flag}: cannot write {self.shown}: No space left on device")
        real_write(self, data)

    monkeypatch.setattr(atomic._Staged, "write", failing_write)
    with pytest.raises(OutputError, match="-noisefile: cannot write .*noise.img: No space left on device"):
        atomic.write_all(_outputs(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["int.img"] and (tmp_path / "int.img").read_bytes() == b"old"


def test_sigkill_while_writing_leaves_no_file_not_even_a_hidden_one(tmp_path):
    """The process dies after staging two files completely and while writing the third."""
    if not atomic._O_TMPFILE:
        pytest.skip("this platform has no unnamed files: a hidden .part file may stay after SIGKILL")
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from nbsim.io import atomic
        from test_atomic import _outputs
        real_write = atomic._Staged.write
        def dying_write(self, data):
            if self.flag == "-noisefile":
                os.kill(os.getpid(), signal.SIGKILL)
            real_write(self, data)
        atomic._Staged.write = dying_write
        atomic.write_all(_outputs(__import__("pathlib").Path({str(tmp_path)!r})))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []


def test_symbolic_links_are_written_through(tmp_path, staging):
    (tmp_path / "real.bin").write_bytes(b"old")
    (tmp_path / "float.bin").symlink_to("real.bin")
    atomic.write_all(_outputs(tmp_path)[:1])
    assert (tmp_path / "float.bin").is_symlink() and (tmp_path / "real.bin").read_bytes() == b"f" * 1000


@pytest.mark.parametrize("name, words", [
    ("", "-floatfile: empty file name"),
    ("sub", "-floatfile: cannot write {p}: it is a directory"),
    ("missing/x.bin", "-floatfile: cannot write {p}: directory {d}/missing does not exist"),
])
def test_check_refuses_paths_before_any_work(tmp_path, name, words):
    (tmp_path / "sub").mkdir()
    path = str(tmp_path / name) if name else ""
    with pytest.raises(OutputError) as info:
        atomic.check(path, "-floatfile")
    assert str(info.value) == words.format(p=path, d=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
