"""Per-shot refinement of stills (nbsim refine --stills): a 20-shot dataset of nbsim stills,
every shot started 0.3 degree off in each misset angle and 0.5% off in the cell, refined,
resumed after a lost block, on two workers, and the list's mistakes as one-line errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nbsim_cli.app import cli

#: a reduced size: 96 x 96 pixels of 0.4 mm, one sub-pixel each
MODEL = ("-cell 70 80 90 75 85 95 -default_F 100 -lambda 1 -N 5 -distance 60 -pixel 0.4 -detpixels 96 "
         "-oversample 1 -noprogress").split()
START_CELL = ["-cell", "70.35", "79.6", "90.45", "75.3", "84.7", "95.4"]  # 0.5% off, mixed signs
SHOTS = 20


def invoke(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, args)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The stills, and a list of them with starting models off the manifest's truth."""
    work = tmp_path_factory.mktemp("stills")
    made = invoke(["stills", *MODEL, "--count", str(SHOTS), "--seed", "3", "--template", "shot_#####.img",
                   "--export-expt", "truth.expt"], work)
    assert made.exit_code == 0, made.stderr
    with open(work / "starts.jsonl", "w") as f:
        for line in (work / "shot.manifest.jsonl").read_text().splitlines():
            truth = json.loads(line)
            k = truth["index"]
            misset = [v + (0.3 if (k >> i) & 1 else -0.3) for i, v in enumerate(truth["misset_degrees"])]
            f.write(json.dumps({"index": k, "file": truth["file"],
                                "start": ["-misset", *map(str, misset), *START_CELL]}) + "\n")
    return work


@pytest.fixture(scope="module")
def refined(dataset) -> Path:
    result = invoke(["refine", *MODEL, "--stills", "starts.jsonl", "--refine", "misset,cell", "--block-size", "5",
                     "--export-expt", "refined.expt"], dataset)
    assert result.exit_code == 0, result.stderr
    assert f"{SHOTS} of {SHOTS} shots refined and converged; table starts.refined.jsonl" in result.output
    return dataset


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_shot_is_refined_to_its_truth(refined):
    truths = rows(refined / "shot.manifest.jsonl")
    table = rows(refined / "starts.refined.jsonl")
    assert [r["index"] for r in table] == list(range(SHOTS))
    for truth, row in zip(truths, table):
        assert row["converged"] and row["error"] is None
        misset = row["parameters"]["misset"]
        assert max(abs(s - t) for s, t in zip(misset["start"], truth["misset_degrees"])) == pytest.approx(0.3)
        # the same rotation: compare matrices (misset angles are not unique near gimbal lock)
        assert max(abs(g - t) for g, t in zip(misset["refined"], truth["misset_degrees"])) < 0.02, row["index"]
        cell = row["parameters"]["cell"]["refined"]
        assert max(abs(g / t - 1) for g, t in zip(cell, (70, 80, 90, 75, 85, 95))) < 1e-3, row["index"]
        a = row["real_space"][0]
        assert math.dist(a, [0, 0, 0]) == pytest.approx(cell[0], rel=1e-9)  # the refined crystal's a axis


def test_the_refined_shots_are_a_dials_experiment_list_close_to_the_truths(refined):
    expt = json.loads((refined / "refined.expt").read_text())
    truth = json.loads((refined / "truth.expt").read_text())
    assert len(expt["experiment"]) == SHOTS and len(expt["crystal"]) == SHOTS
    for got, want in zip(expt["crystal"], truth["crystal"]):
        for axis in ("real_space_a", "real_space_b", "real_space_c"):  # 0.02 degree of 90 A: 0.03 A
            assert math.dist(got[axis], want[axis]) < 0.1, axis
    assert expt["imageset"][0]["images"] == [str(refined / "shot_00001.img")]


def test_a_rerun_refines_only_the_shots_that_are_missing_whatever_the_block_size(refined):
    parts = sorted((refined / "starts.refined.jsonl.parts").iterdir())
    assert [p.name for p in parts] == [f"shots_{i:08d}.jsonl" for i in (0, 5, 10, 15)]
    before = rows(refined / "starts.refined.jsonl")
    parts[1].unlink()
    # blocks of 10 now: shots 0-9 are half done (a part of 0-4), 10-19 done (two parts)
    result = invoke(["refine", *MODEL, "--stills", "starts.jsonl", "--refine", "misset,cell"], refined)
    assert result.exit_code == 0, result.stderr
    assert "15 of 20 shots are refined already; refining the other 5" in result.stderr
    after = rows(refined / "starts.refined.jsonl")
    assert [r["seconds"] for r in after[:5] + after[10:]] == [r["seconds"] for r in before[:5] + before[10:]]
    for old, new in zip(before[5:10], after[5:10]):  # the same fit again
        assert new["parameters"] == old["parameters"]


def test_workers_share_the_shots_and_refine_them_as_one_process_does(refined):
    lines = (refined / "starts.jsonl").read_text().splitlines()[:4]
    (refined / "four.jsonl").write_text("\n".join(lines) + "\n")
    result = invoke(["refine", *MODEL, "--stills", "four.jsonl", "--refine", "misset,cell", "--workers", "2"],
                    refined)
    assert result.exit_code == 0, result.stderr
    # four shots on two workers: blocks of one shot, so that both workers have work
    assert len(list((refined / "four.refined.jsonl.parts").iterdir())) == 4
    alone = rows(refined / "starts.refined.jsonl")[:4]
    for old, new in zip(alone, rows(refined / "four.refined.jsonl")):
        for name in ("misset", "cell"):  # one torch thread a worker: sums in another order
            assert new["parameters"][name]["refined"] == pytest.approx(old["parameters"][name]["refined"], abs=1e-6)


@pytest.mark.parametrize("lines, message", [
    (["{not json"], "--stills: bad.jsonl line 1: not JSON"),
    (['[1, 2]'], "--stills: bad.jsonl line 1: expected a JSON object"),
    (['{"index": 0}'], "--stills: bad.jsonl line 1: no image"),
])
def test_a_bad_list_is_a_one_line_error_and_writes_nothing(tmp_path, lines, message):
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    result = invoke(["refine", *MODEL, "--stills", "bad.jsonl", "--refine", "misset"], tmp_path)
    assert result.exit_code != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_options_of_one_mode_are_refused_in_the_other(tmp_path):
    result = invoke(["refine", *MODEL, "--observed", "x.img", "--refine", "misset", "--table", "t.jsonl"], tmp_path)
    assert result.exit_code != 0 and "--table goes with --stills" in result.stderr
    result = invoke(["refine", *MODEL, "--observed", "x.img", "--stills", "s.jsonl", "--refine", "misset"], tmp_path)
    assert result.exit_code != 0 and "one of them" in result.stderr
