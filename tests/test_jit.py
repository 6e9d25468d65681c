"""Compiled code is cached in the user's cache directory, and a render that must compile says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nbsim import Simulation
from nbsim.engines import numba_engine as cpu
from nbsim.engines.pipeline import render
from nbsim.physics import jit
from nbsim.runner import RunOptions, run

ARGV = "-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 16 -lambda 1 -distance 100".split()


def _python(code: str, env: dict, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("env, expected", [
    ({"NBSIM_CACHE": "/somewhere/nb"}, "/somewhere/nb/numba"),
    ({"NBSIM_CACHE": "", "XDG_CACHE_HOME": "/xdg"}, "/xdg/nbsim/numba"),
    ({"NBSIM_CACHE": "", "XDG_CACHE_HOME": "", "HOME": "/home/someone"}, "/home/someone/.cache/nbsim/numba"),
    ({"NBSIM_CACHE": "/somewhere/nb", "NUMBA_CACHE_DIR": "/mine"}, "/mine"),
])
def test_numba_caches_in_the_user_cache_directory(env, expected, tmp_path):
    code = "from nbsim.physics import jit\nprint(jit.numba().config.CACHE_DIR)"
    if "NUMBA_CACHE_DIR" not in env:
        expected = f"{expected}/{jit.sources_digest()}"
    assert _python(code, env, tmp_path) == expected


def test_every_version_of_the_sources_has_a_cache_of_its_own(tmp_path):
    """numba checks a cached function against its own file only: an edit to a formula it inlines
    from another module must not load code compiled before the edit."""
    package = Path(jit.__file__).parents[1]
    copy = tmp_path / "nbsim"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert jit.sources_digest(copy) == jit.sources_digest()
    formulas = copy / "physics" / "pass_quantities.py"
    formulas.write_text(formulas.read_text().replace("/ 2.0", "* 0.5"))
    assert jit.sources_digest(copy) != jit.sources_digest()


def test_will_compile_reads_the_disk_cache(tmp_path):
    """True before the first call, False once compiled in this process, and False in a new process
    that finds the compiled code on disk; a different argument type compiles again."""
    (tmp_path / "tiny_jit.py").write_text(textwrap.dedent("""
        from nbsim.physics import jit
        jit.numba()
        from numba import njit

        @njit(cache=True)
        def twice(x):
            return 2 * x
    """))
    first = """
        import tiny_jit
        from nbsim.physics import jit
        before = jit.will_compile(tiny_jit.twice, (1.5,))
        tiny_jit.twice(1.5)
        print(before, jit.will_compile(tiny_jit.twice, (1.5,)), jit.will_compile(tiny_jit.twice, (3,)))
    """
    env = {"NBSIM_CACHE": str(tmp_path / "cache"), "NUMBA_CACHE_DIR": "", "PYTHONPATH": str(tmp_path)}
    assert _python(first, env, tmp_path) == "True False True"
    again = "import tiny_jit\nfrom nbsim.physics import jit\nprint(jit.will_compile(tiny_jit.twice, (1.5,)))"
    assert _python(again, env, tmp_path) == "False"
    assert any((tmp_path / "cache" / "numba").rglob("*.nbi"))


@pytest.mark.parametrize("compiles", [True, False])
def test_the_numba_engine_announces_a_compile_once_and_compiles_apart(monkeypatch, compiles):
    monkeypatch.setattr(jit, "will_compile", lambda dispatcher, args: compiles)
    apart = []
    monkeypatch.setattr(cpu, "compile_apart", lambda: apart.append(1) or True)
    told = []
    sim = Simulation.from_argv(ARGV + ["-mosaic", "1", "-mosaic_dom", "3"])
    with torch.no_grad():
        render(sim.model(), sim.physics, engine="numba", notice=told.append, max_memory=1 << 24)
    assert told == ([cpu.COMPILE_NOTICE] if compiles else [])
    assert apart == ([1] if compiles else [])


@pytest.mark.slow
def test_a_first_render_loads_the_loop_compiled_by_a_child_process(tmp_path):
    """With an empty cache the loop is compiled in a child process and loaded from the cache here
    (the loop numba compiles in a process runs several times slower there)."""
    code = """
        import torch
        from nbsim import Simulation
        from nbsim.engines import numba_engine as cpu
        from nbsim.engines.pipeline import render
        sim = Simulation.from_argv("-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 16".split())
        with torch.no_grad():
            fast = render(sim.model(), sim.physics, engine="numba").image
            tensor = render(sim.model(), sim.physics, engine="tensor").image
        stats = cpu.loop().render_pixels.stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()), bool(torch.allclose(fast, tensor)))
    """
    env = {"NBSIM_CACHE": str(tmp_path / "cache"), "NUMBA_CACHE_DIR": ""}
    assert _python(code, env, tmp_path) == "1 0 True"


def test_the_child_process_compiles_the_loop_itself(monkeypatch):
    monkeypatch.setenv(cpu.COMPILING_APART, "1")
    assert cpu.compile_apart() is False


@pytest.mark.parametrize("with_progress", [True, False])
def test_the_command_says_so_only_where_it_shows_progress(monkeypatch, capsys, tmp_path, with_progress):
    """The CLI passes progress only to a terminal without -noprogress; the notice follows it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(jit, "will_compile", lambda dispatcher, args: True)
    monkeypatch.setattr(cpu, "compile_apart", lambda: True)
    run(ARGV + ["-nonoise", "-nopgm"], RunOptions(engine="numba"), echo=lambda text: None,
        progress=(lambda *a, **k: None) if with_progress else None)
    notice = f"nbsim: {cpu.COMPILE_NOTICE}"
    assert (notice in capsys.readouterr().err) == with_progress
