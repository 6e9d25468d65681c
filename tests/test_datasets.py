"""nbsim series and nbsim stills: every image is the image of ``nbsim run`` with the flags its
manifest line gives; files are whole, resumable, and the ground truth indexes as nbsim does."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from nbsim.datasets import plan_from_argv
from nbsim.datasets.plan import generator, random_rotation
from nbsim.datasets.torch_dataset import SimulatedImages
from nbsim_cli.app import cli

BASE = ["-cell", "61", "72", "83", "88", "97", "101", "-misset", "10", "-20", "30", "-default_F", "10", "-N", "3",
        "-lambda", "1.2", "-distance", "110", "-detpixels_f", "40", "-detpixels_s", "30", "-pixel", "0.17",
        "-oversample", "1", "-nopgm", "-noprogress"]
SERIES = [*BASE, "-phi", "20", "-osc", "0.7", "-phisteps", "2"]
STILLS = [*BASE, "-mosaic", "0.4", "-mosaic_domains", "3"]


def invoke(*argv):
    result = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result


def manifest(path="data.manifest.jsonl"):
    return [json.loads(line) for line in open(path)]


def run_alone(flags, name):
    """``nbsim run`` with ``flags``: its float and noise images."""
    invoke("run", *flags, "-floatfile", f"{name}.bin", "-noisefile", f"{name}.img", "-intfile", f"{name}_int.img")
    return open(f"{name}.bin", "rb").read(), open(f"{name}.img", "rb").read()


@pytest.mark.parametrize("kind, argv, size", [("series", SERIES, ["--frames", "3"]),
                                              ("stills", STILLS, ["--count", "3", "--seed", "5"]),
                                              ("stills", STILLS, ["--count", "2", "--seed", "6", "--energy-jitter",
                                                                  "0.02", "--size-jitter", "0.3"])])
def test_every_image_is_nbsim_run_with_its_manifest_flags(tmp_path, monkeypatch, kind, argv, size):
    monkeypatch.chdir(tmp_path)
    invoke(kind, *argv, *size, "--template", "data_###.bin")
    invoke(kind, *argv, *size, "--template", "data_###.img", "--manifest", "noise.manifest.jsonl")
    records = manifest()
    assert [r["file"] for r in records] == [f"data_{k + 1:03d}.bin" for k in range(len(records))]
    for k, record in enumerate(records):
        photons, noise = run_alone([*argv, *record["reproduce"]], f"alone{k}")
        assert open(record["file"], "rb").read() == photons, k  # bit for bit
        assert open(f"data_{k + 1:03d}.img", "rb").read() == noise, k  # the same SMV file, header and all
    if kind == "stills":  # every still differs: orientation, mosaic domains, noise
        assert len({r["sha256"] for r in records}) == len(records)
        assert len({tuple(r["misset_degrees"]) for r in records}) == len(records)


def test_an_interrupted_dataset_is_finished_with_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = ["stills", *STILLS, "--count", "4", "--seed", "3", "--template", "still_####.cbf", "--export-expt",
             "truth.expt"]
    invoke(*flags)
    whole = {name: open(name, "rb").read() for name in sorted(os.listdir()) if name.startswith("still")}
    truth = open("truth.expt").read()
    os.remove("still_0002.cbf")
    os.remove("still_0004.cbf")
    os.remove("still.manifest.jsonl")
    result = invoke(*flags)
    assert "2 of 4 images exist already; rendering the other 2" in result.stderr
    assert {name: open(name, "rb").read() for name in whole} == whole
    assert open("truth.expt").read() == truth


def test_a_series_is_one_sweep_and_stills_are_experiments_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("series", *SERIES, "--frames", "4", "--template", "sweep_#####.cbf", "--export-expt", "sweep.expt")
    sweep = json.loads(open("sweep.expt").read())
    assert len(sweep["experiment"]) == 1 and sweep["imageset"][0]["template"] == "sweep_#####.cbf"
    scan = sweep["scan"][0]
    assert scan["image_range"] == [1, 4]
    assert scan["properties"]["oscillation"] == pytest.approx([20.0, 20.7, 21.4, 22.1])
    assert scan["properties"]["oscillation_width"] == pytest.approx([0.7] * 4)
    invoke("stills", *STILLS, "--count", "3", "--template", "s_##.cbf", "--export-expt", "stills.expt")
    stills = json.loads(open("stills.expt").read())
    assert len(stills["experiment"]) == len(stills["crystal"]) == 3
    assert len(stills["beam"]) == len(stills["detector"]) == 1 and not stills["scan"]
    records = manifest("s.manifest.jsonl")
    for k, record in enumerate(records):  # each crystal is that of nbsim run with the still's flags
        invoke("run", *STILLS, *record["reproduce"], "-nonoise", "-floatfile", "x.bin", "--export-expt", "one.expt")
        one = json.loads(open("one.expt").read())["crystal"][0]
        for axis in "abc":
            assert np.allclose(stills["crystal"][k][f"real_space_{axis}"], one[f"real_space_{axis}"], atol=1e-12)


def test_orientations_are_uniform_and_depend_only_on_seed_and_index():
    rotations = np.array([random_rotation(generator(11, k, 0)) for k in range(4000)])
    assert np.allclose(np.einsum("kij,kil->kjl", rotations, rotations), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rotations), 1.0)
    assert np.abs(rotations.mean(axis=0)).max() < 0.04  # uniform over rotations: E[U] = 0
    # the angle of a uniform rotation has density (1 - cos t)/pi: mean of cos t is -1/2... of trace = 1 + 2 cos t: 0
    assert abs(np.trace(rotations, axis1=1, axis2=2).mean()) < 0.05
    again = [random_rotation(generator(11, k, 0)) for k in (3999, 17, 0)]
    assert np.array_equal(again, rotations[[3999, 17, 0]])


def test_the_torch_dataset_renders_the_files_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("stills", *STILLS, "--count", "3", "--seed", "9", "--template", "t_#.bin")
    images = SimulatedImages.stills(STILLS, 3, seed=9)
    assert len(images) == 3
    item = images[2]
    assert item["index"] == 2 and item["record"] == {k: v for k, v in manifest("t.manifest.jsonl")[2].items()
                                                     if k not in ("file", "sha256", "reproduce")}
    assert item["photons"].numpy().tobytes() == open("t_3.bin", "rb").read()
    assert item["counts"].dtype.is_floating_point is False
    import pickle

    copy = pickle.loads(pickle.dumps(images))  # as DataLoader workers get it
    assert copy[0]["photons"].numpy().tobytes() == open("t_1.bin", "rb").read()
    with pytest.raises(IndexError):
        images[3]


@pytest.mark.parametrize("argv, message", [
    (["series", *BASE, "--frames", "2", "--template", "a_##.cbf"], "give -osc > 0"),
    (["series", *SERIES, "--frames", "2", "--template", "a.cbf"], "one run of '#'"),
    (["series", *SERIES, "--frames", "200", "--template", "a_##.cbf"], "numbers at most 99 images"),
    (["series", *SERIES, "--frames", "2", "--template", "a_##.tif"], "the extension says the format"),
    (["series", *SERIES, "-nonoise", "--frames", "2", "--template", "a_##.cbf"], "remove -nonoise or write .bin"),
    (["stills", *STILLS, "--count", "2", "--energy-jitter", "0.1", "--template", "a_##.cbf", "-oversample", "1"],
     None),
    (["stills", *[t for t in STILLS if t not in ("-oversample", "1")], "--count", "2", "--size-jitter", "0.1",
      "--template", "a_##.cbf"], "give -oversample N"),
])
def test_dataset_usage_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    if message is None:
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert os.listdir() == []


def test_plans_from_python_match_the_command(tmp_path):
    plan = plan_from_argv("series", SERIES, frames=3)
    assert plan.reproduce(2)[:2] == ["-phi", repr(20.0 + 2 * 0.7)]
    assert plan.config(2).sampling.phi0 == (20.0 + 2 * 0.7) / (180.0 / np.pi)


def test_a_nexus_dataset_is_a_master_over_shards_that_nxmx_reads(tmp_path, monkeypatch):
    import h5py
    import hdf5plugin  # noqa: F401
    import nxmx

    monkeypatch.chdir(tmp_path)
    invoke("series", *SERIES, "--frames", "5", "--template", "f_#.img", "--nexus", "sweep.nxs", "--shard-size", "2")
    assert sorted(p for p in os.listdir() if p.endswith(".nxs")) == [
        "sweep.nxs", "sweep_00001.nxs", "sweep_00002.nxs", "sweep_00003.nxs"]
    records = manifest("f.manifest.jsonl")
    with h5py.File("sweep.nxs", "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        (axis,) = nxmx.get_dependency_chain(entry.samples[0].depends_on)
        assert axis[()].to("deg").magnitude == pytest.approx([20.0, 20.7, 21.4, 22.1, 22.8])
        data = f["/entry/data/data"]
        assert data.is_virtual and data.shape == (5, 30, 40)
        for k in range(5):
            smv = np.fromfile(f"f_{k + 1}.img", dtype=np.uint16)[-30 * 40:].reshape(30, 40)
            assert np.array_equal(data[k], smv), k
            assert (records[k]["shard"], records[k]["frame"]) == (f"sweep_{k // 2 + 1:05d}.nxs", k % 2)


def test_on_a_dask_cluster_that_loses_a_worker_the_dataset_is_complete_and_identical(tmp_path, monkeypatch):
    """A real LocalCluster of two worker processes, one killed after the first block: Dask runs
    its tasks again elsewhere and the files are byte for byte those of a one-process run. (The
    cluster runs in a fresh interpreter: Dask's event loops do not mix with those other tests
    leave behind.)"""
    import subprocess
    import sys

    from nbsim.datasets.run import Outputs, run_dataset
    from nbsim.runner import RunOptions

    plan = plan_from_argv("stills", STILLS, count=8, seed=4)
    (tmp_path / "alone").mkdir()
    (tmp_path / "dask").mkdir()
    monkeypatch.chdir(tmp_path / "alone")
    run_dataset(plan, RunOptions(), Outputs(template="s_#.img", nexus="s.nxs", shard_size=1, export_expt="s.expt"))
    script = f"""
import os, signal
from distributed import Client, LocalCluster
from nbsim.datasets import plan_from_argv
from nbsim.datasets.distributed import ScaleOut
from nbsim.datasets.run import Outputs, run_dataset
from nbsim.runner import RunOptions

if __name__ == "__main__":
    plan = plan_from_argv("stills", {STILLS!r}, count=8, seed=4)
    outputs = Outputs(template="s_#.img", nexus="s.nxs", shard_size=1, export_expt="s.expt")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def progress(done, total):
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        with ScaleOut(client=client) as scale_out:
            rendered = run_dataset(plan, RunOptions(), outputs, progress=progress, scale_out=scale_out)
    # a task whose worker died after writing its files finds them there when run again
    assert killed and set(rendered) <= set(range(8)), (killed, rendered)
    print("killed", killed[0])
"""
    (tmp_path / "cluster.py").write_text(script)
    done = subprocess.run([sys.executable, str(tmp_path / "cluster.py")], cwd=tmp_path / "dask", capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "killed" in done.stdout, done.stderr[-3000:]
    alone, spread = (sorted(os.listdir(tmp_path / d)) for d in ("alone", "dask"))
    assert alone == spread and len(alone) == 8 + 9 + 2  # images, shards and master, manifest and expt
    for name in alone:
        assert (tmp_path / "alone" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name


def test_workers_get_blocks_of_numbered_files_to_share_but_nexus_shards_stay_as_asked():
    from nbsim.datasets.distributed import task_size
    from nbsim.datasets.run import Outputs, blocks

    plan = plan_from_argv("stills", STILLS, count=100, seed=4)
    files = Outputs(template="s_#####.img")  # --shard-size 100: one block in one process
    assert blocks(plan, files) == [range(0, 100)]
    spread = blocks(plan, files, parallelism=2)  # about four blocks a worker, every image once
    assert len(spread) == 8 and [k for block in spread for k in block] == list(range(100))
    nexus = Outputs(nexus="s.nxs", shard_size=30)  # the shards are the files: their size is the user's
    assert blocks(plan, nexus, parallelism=2) == [range(0, 30), range(30, 60), range(60, 90), range(90, 100)]
    assert task_size(1000, 10, None) == 10 and task_size(1000, 10, 4) == 10
    assert task_size(10, 10, 2) == 2 and task_size(4, 10, 2) == 1 and task_size(0, 10, 3) == 1


def test_ctrl_c_stops_between_files_and_the_rerun_finishes_the_same_dataset(tmp_path):
    """SIGINT to a running ``nbsim stills`` (the console script): it exits 130, every file it
    left is whole, and running the command again gives the uninterrupted run's bytes."""
    import signal
    import subprocess
    import time

    import golden

    argv = [golden.NBSIM, "stills", *STILLS, "--count", "40", "--seed", "8", "--template", "c_##.img"]
    whole = tmp_path / "whole"
    whole.mkdir()
    subprocess.run(argv, cwd=whole, check=True, capture_output=True)
    cut = tmp_path / "cut"
    cut.mkdir()
    proc = subprocess.Popen(argv, cwd=cut, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(cut.glob("c_*.img"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    left = sorted(p.name for p in cut.iterdir())
    if proc.returncode == 0:  # it finished before the signal came: nothing to check
        pytest.skip("the run ended before SIGINT")
    assert proc.returncode == 128 + signal.SIGINT and "interrupted" in stderr
    assert 3 <= len(left) < 40 and all(name.startswith("c_") and name.endswith(".img") for name in left), left
    for name in left:
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    subprocess.run(argv, cwd=cut, check=True, capture_output=True)
    assert sorted(p.name for p in cut.iterdir()) == sorted(p.name for p in whole.iterdir())
    for p in whole.iterdir():
        assert (cut / p.name).read_bytes() == p.read_bytes(), p.name


def test_a_detector_response_gives_what_each_still_records(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    chain = ["--response", "psf-gauss:fwhm=300", "--response", "poisson:rng=parallel", "--response", "gain:adu_per_photon=3",
             "--response", "readout:sigma=1.5"]
    invoke("stills", *STILLS, "-nonoise", "--count", "2", "--seed", "3", "--template", "r_#.img", *chain)
    for k, record in enumerate(manifest("r.manifest.jsonl")):
        invoke("run", *STILLS, *record["reproduce"], *chain, "-noisefile", "alone.img", "-floatfile", "x.bin")
        assert open(f"r_{k + 1}.img", "rb").read() == open("alone.img", "rb").read(), k


def test_a_dataset_whose_whole_work_pays_for_numba_renders_with_it_and_says_so(tmp_path, monkeypatch):
    """8 stills of 262,144 sub-evaluations: one is below numba's threshold (nbsim run takes the
    tensor kernel), the dataset is above it; its manifest's flags make each image again."""
    monkeypatch.chdir(tmp_path)
    argv = [*BASE[:BASE.index("-detpixels_f")], "-detpixels", "256", "-pixel", "0.2", "-oversample", "2", "-nopgm",
            "-noprogress"]
    invoke("stills", *argv, "--count", "8", "--seed", "2", "--template", "big_#.img")
    records = manifest("big.manifest.jsonl")
    assert all(r["reproduce"][-2:] == ["--engine", "numba"] for r in records)
    photons, noise = run_alone([*argv, *records[5]["reproduce"]], "alone")
    assert open("big_6.img", "rb").read() == noise
    invoke("stills", *argv, "--count", "1", "--seed", "2", "--template", "one_#.img")
    assert "--engine" not in manifest("one.manifest.jsonl")[0]["reproduce"]  # one image: auto, as nbsim run
