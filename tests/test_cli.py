"""The command line: errors, help, the example, provenance, warnings, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from golden import GOLDEN, NBSIM
from nbsim.engines.budget import parse_size
from nbsim.plugins.system import build_system, plugins_in_use
from nbsim_cli.app import EXAMPLE_ARGV, cli, openmp_wait_policy

SMALL = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2", "-N", "5",
         "-distance", "100", "-detpixels", "32", "-noprogress"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nbsim: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["-cell", "100", "-default_F", "1", "-wavelength_typo", "1"], 2, ["-wavelength_typo"]),
        (SMALL + ["-distance"], 2, ["-distance", "missing"]),
        (SMALL + ["-distance", "abc"], 2, ["-distance", "'abc'"]),
        (SMALL + ["-N", "2.9"], 2, ["-N", "integer"]),
        (SMALL + ["-roi", "1", "2", "3"], 2, ["-roi", "missing"]),
        (SMALL + ["-pivot", "middle"], 2, ["-pivot", "beam", "sample"]),
        (SMALL + ["-lambda", "0"], 2, ["-lambda", "positive"]),
        (SMALL + ["-pixel", "0"], 2, ["-pixel", "positive"]),
        (["-cell", "100", "100", "100", "90", "90", "90"], 2, ["structure factors", "-hkl"]),
        (["-default_F", "1"], 2, ["-cell", "-mat"]),
        (SMALL + ["-hkl", "missing.hkl"], 1, ["-hkl", "missing.hkl"]),
        (SMALL + ["-mat", "missing.mat"], 1, ["-mat", "missing.mat"]),
        (SMALL + ["-sourcefile", "missing.txt"], 1, ["-sourcefile", "missing.txt"]),
        (SMALL + ["-mask", "missing.img"], 1, ["-mask", "missing.img"]),
        (SMALL + ["--c-threads", "2"], 2, ["--c-threads", "c-parity"]),
        (SMALL + ["--phi-policy", "nonesuch"], 2, ["nonesuch", "spec", "c-parity"]),
        (SMALL + ["--lattice", "cubic"], 2, ["lattice factor", "square"]),
        (SMALL + ["stray"], 2, ["stray"]),
        (SMALL + ["--max-memory", "lots"], 2, ["--max-memory"]),
        (SMALL + ["-fluence", "-5"], 2, ["-fluence", "non-negative"]),
        (SMALL + ["-water", "-1"], 2, ["-water", "non-negative"]),
        (SMALL + ["--device", "banana"], 2, ["--device", "banana"]),
        (SMALL + ["--engine", "warp"], 2, ["--engine"]),
    ],
)
def test_errors_are_one_line_and_leave_no_files(in_tmp, args, code, words):
    result = invoke("run", *args)
    assert result.exit_code == code, result.stderr
    line = one_error_line(result)
    for w in words:
        assert w in line
    assert sorted(os.listdir(in_tmp)) == []


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_cuda_is_a_usage_error(in_tmp):
    result = invoke("run", *SMALL, "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in one_error_line(result)


def test_malformed_hkl_names_file_and_line(in_tmp):
    (in_tmp / "bad.hkl").write_text("0 0 0 10\n1 0 x 20\n")
    result = invoke("run", *SMALL, "-hkl", "bad.hkl")
    assert result.exit_code == 1
    assert "bad.hkl:2" in one_error_line(result)
    assert sorted(os.listdir(in_tmp)) == ["bad.hkl"]


def test_malformed_matrix(in_tmp):
    (in_tmp / "bad.mat").write_text("0.01 0 0\n0 0.01\n")
    result = invoke("run", "-mat", "bad.mat", "-default_F", "1", "-detpixels", "8")
    assert result.exit_code == 1
    assert "bad.mat" in one_error_line(result)


def test_mask_of_other_size_is_an_error(in_tmp):
    (in_tmp / "mask.img").write_bytes((GOLDEN / "inputs" / "mask.img").read_bytes())
    result = invoke("run", *SMALL, "-mask", "mask.img", "-detpixels", "64")
    assert result.exit_code == 1
    assert "-mask" in one_error_line(result)


def test_help_lists_flags_by_topic():
    result = invoke("run", "--help")
    assert result.exit_code == 0
    for text in ("Crystal:", "Beam:", "Detector:", "Sampling:", "Output files:", "-mosaic_domains",
                 "-detector_absorb", "-pix0_vector_mm", "--phi-policy", "--c-threads", "-trace_pixel"):
        assert text in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("nbsim, version")


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_import_neither_torch_nor_plugins(argv):
    """What makes them answer at once: the subcommands (torch, numba, plugins) are built on first use."""
    code = ("import sys\nfrom nbsim_cli.app import main\nsys.argv = ['nbsim', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numba', 'numpy', 'pluggy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    assert ("nbsim, version" if argv == ["--version"] else "render an image from nanoBragg flags") in proc.stdout


def test_example_writes_the_images(in_tmp):
    result = invoke("run", "--example", "-noprogress")
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(in_tmp)) == ["floatimage.bin", "image.pgm", "intimage.img", "noiseimage.img"]
    assert "max_I = " in result.output and "mean= " in result.output
    assert (in_tmp / "floatimage.bin").stat().st_size == 256 * 256 * 4
    assert "-cell" in EXAMPLE_ARGV


def test_options_anywhere_and_with_equals(in_tmp):
    result = invoke("run", "--dtype=float64", *SMALL[:6], "--phi-policy", "spec", *SMALL[6:], "-nonoise", "-nopgm")
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(in_tmp)) == ["floatimage.bin", "intimage.img"]


def test_provenance_record(in_tmp):
    result = invoke("run", *SMALL, "-nonoise", "--provenance", "run.json", "-floatfile", "f.bin")
    assert result.exit_code == 0, result.stderr
    record = json.loads((in_tmp / "run.json").read_text())
    assert record["argv"][:2] == ["-cell", "100"]
    assert record["phi_policy"]["name"] == "spec"
    assert record["dtype"] == "float64" and record["device"] == "cpu"
    assert set(record["outputs"]) >= {"f.bin", "intimage.img", "image.pgm"}
    assert len(record["outputs"]["f.bin"]) == 64
    assert any(p["distribution"] == "nbsim-phi-spec" for p in record["plugins"])


def test_ineffective_flags_warn(in_tmp):
    result = invoke("run", *SMALL, "-pivot", "sample", "-pix0_vector", "0.1", "0", "0", "-nonoise", "-nopgm")
    assert result.exit_code == 0
    assert "-pix0_vector" in result.stderr
    result = invoke("run", *SMALL, "-pivot", "sample", "-nonoise", "-nopgm")
    assert "warning: -pivot" in result.stderr
    result = invoke("run", *SMALL, "-xds", "-Xbeam", "3", "-nonoise", "-nopgm")
    assert "warning: -Xbeam" in result.stderr


def test_distance_beside_header_close_distance_warns(in_tmp):
    (in_tmp / "header.img").write_bytes((GOLDEN / "inputs" / "header.img").read_bytes())
    result = invoke("run", "-cell", "100", "-default_F", "1", "-img", "header.img", "-distance", "50", "-nonoise",
                    "-nopgm", "-noprogress")
    assert result.exit_code == 0, result.stderr
    assert "warning: -distance" in result.stderr and "CLOSE_DISTANCE" in result.stderr
    assert "distance=0.119836" in result.output


def test_dump_cache_is_written_and_announced(in_tmp):
    (in_tmp / "tiny.hkl").write_text("0 0 0 100\n1 0 0 50\n0 1 0 25\n")
    first = invoke("run", *SMALL, "-hkl", "tiny.hkl", "-nonoise", "-nopgm")
    assert first.exit_code == 0 and (in_tmp / "Fdump.bin").exists()
    second = invoke("run", *SMALL, "-nonoise", "-nopgm", "-floatfile", "again.bin")
    assert second.exit_code == 0
    assert "Fdump.bin" in second.stderr
    assert (in_tmp / "again.bin").read_bytes() == (in_tmp / "floatimage.bin").read_bytes()


def test_printout_pixel_traces_one_pixel(in_tmp):
    result = invoke("run", *SMALL, "-printout_pixel", "10", "12", "-nonoise", "-nopgm")
    assert result.exit_code == 0
    assert "  10   12 : stol = " in result.output
    assert result.output.count("capfrac") == 1
    trace = invoke("run", *SMALL, "-trace_pixel", "12", "10", "-nonoise", "-nopgm")
    assert "  10   12 : stol = " in trace.output


def test_installed_console_script(in_tmp):
    proc = subprocess.run([NBSIM, "run", *SMALL, "-nonoise", "-nopgm", "-N"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "nbsim: error: -N: missing value (expected an integer)"


@pytest.mark.parametrize("text, value", [("4G", 4 << 30), ("512M", 512 << 20), ("1000", 1000), ("2gib", 2 << 30)])
def test_memory_sizes(text, value):
    assert parse_size(text) == value


def test_plugins_listing():
    """``nbsim plugins`` lists what is installed: this test reads the entry points themselves."""
    with plugins_in_use(build_system()):
        result = invoke("plugins", "--json")
        text = invoke("plugins").output
    record = json.loads(result.output)
    names = {p["name"] for p in record["plugins"]}
    assert {"phi-spec", "phi-c-parity"} <= names
    spec = next(p for p in record["plugins"] if p["name"] == "phi-spec")
    assert spec["origin"] == "entry point" and spec["distribution"] == "nbsim-phi-spec"
    assert "nbsim_register_phi_policies" in spec["hooks"]
    assert "phi-c-parity" in text and "built-in" in text


def test_no_traceback_for_bad_header_file(in_tmp):
    Path("junk.img").write_bytes(b"not an smv file" * 100)
    result = invoke("run", *SMALL, "-img", "junk.img")
    assert result.exit_code == 1
    assert "junk.img" in one_error_line(result)


@pytest.mark.parametrize("environ, others, policy", [
    ({}, 0, None),                              # idle CPUs: spinning waiters are fastest
    ({}, 2, "PASSIVE"),                         # busy: spinning steals the working threads' time
    ({"OMP_WAIT_POLICY": "ACTIVE"}, 3, None),   # the user's choice stands
    ({"GOMP_SPINCOUNT": "1000"}, 3, None),
])
def test_openmp_threads_sleep_while_they_wait_on_a_busy_machine(environ, others, policy):
    assert openmp_wait_policy(environ, others) == policy
