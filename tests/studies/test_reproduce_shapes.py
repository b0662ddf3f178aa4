"""The reproduce_shapes study: the lr rule, the sign test and latent sizes in closed form, the committed digits rows,
and `quick=true` end to end."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from scipy.stats import binomtest

from noise_exp.data.shapes import TAGS
from noise_exp.studies import reproduce_shapes as reproduce
from noise_exp.studies.__main__ import main as studies
from tests.conftest import ROOT

REFERENCE = ROOT / "results" / "reference" / "reproduce_small.csv"


def study(*overrides: str) -> int:
    """python -m noise_exp.studies reproduce_shapes <overrides>, in this process."""
    return studies(["reproduce_shapes", *overrides])


@pytest.mark.parametrize("wins, losses, expected", [
    (9, 1, 2 * (1 + 10) / 2 ** 10),          # 2 * (C(10,0) + C(10,1)) / 2^10 = 0.021484375
    (1, 9, 2 * (1 + 10) / 2 ** 10),          # symmetric
    (0, 5, 2 / 2 ** 5),                      # 0.0625
    (10, 0, 2 / 2 ** 10),
    (4, 2, 2 * (1 + 6 + 15) / 2 ** 6),      # 0.6875
    (3, 3, 1.0), (1, 0, 1.0), (0, 0, 1.0),
])
def test_sign_test_is_the_exact_two_sided_binomial(wins, losses, expected):
    assert reproduce.sign_test_p(wins, losses) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("wins, losses", [(13, 87), (22, 28), (0, 50), (40, 61), (300, 250)])
def test_sign_test_agrees_with_scipy(wins, losses):
    assert reproduce.sign_test_p(wins, losses) == pytest.approx(binomtest(wins, wins + losses).pvalue, rel=1e-9)


def test_paper_equivalent_lr_is_the_projects_scaling_rule():
    lr = reproduce.paper_equivalent_lr
    assert lr(4 * 128 * 128, 100) == pytest.approx(100.0)  # the paper's setting
    assert lr(4 * 64 * 64, 100) == pytest.approx(25.0)     # docs/CONVENTIONS.md: SDXL-turbo at 512 px
    assert lr(64, 100) == pytest.approx(0.09765625)        # docs/small_model.md: "lr 0.1 at d = 64"
    assert lr(256, 20) == pytest.approx(1.953125) and lr(1024, 20) == pytest.approx(7.8125)


@pytest.mark.parametrize("folder, size, dim", [("small-digits", 16, 64), ("small-shapes", 32, 256),
                                               ("small-shapes-l", 64, 1024)])
def test_latent_dim_of_the_committed_models(folder, size, dim):
    assert reproduce.latent_dim(ROOT / "weights" / folder, size, size) == dim


def test_digits_rows_reproduce_the_documented_p_values_and_intervals():
    rows = {(r.table, r.guidance, r.metric): r for r in reproduce.digits_comparisons(REFERENCE)}
    documented = {("selection", 1.0, "digit_classifier"): (1.3e-14, 0.08, 0.21),
                  ("selection", 1.0, "digit_realism"): (8.0e-27, 0.01, 0.07),
                  ("selection", 3.0, "digit_classifier"): (0.015, None, None),
                  ("optimization", 3.0, "digit_classifier"): (0.48, 0.31, 0.58),
                  ("optimization", 3.0, "digit_realism"): (4.2e-9, 0.04, 0.21)}
    for key, (p_value, low, high) in documented.items():
        row = rows[key]
        assert float(f"{row.sign_p:.2g}") == pytest.approx(p_value)
        if low is not None:
            assert (round(row.ci_low, 2), round(row.ci_high, 2)) == (low, high)


@pytest.mark.parametrize("argv, message", [(["prompts=[8]"], "multiples of 6 (shapes_bench cycles through its 6 tags), got 8"),
                                           (["optimize_prompts=[6,6,6]"], "one count or one per model (2), got 3"),
                                           (["models=[small_digits]"], "models: small_digits; choose among"),
                                           (["reference=/missing.csv"], "reference /missing.csv: cannot read it")])
def test_prompt_counts_must_be_balanced_and_one_per_model(tmp_path, capsys, argv, message):
    assert study(*argv, f"out={tmp_path}") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not any(tmp_path.iterdir())  # refused before any work


def test_quick_run_writes_both_tables_with_the_weights_used(tmp_path):
    out = tmp_path / "out"
    assert study("quick=true", f"out={out}") == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["comparisons"]
    shapes = [r for r in rows if r["model"] == "small_shapes"]
    for table, a, b in (("selection", "stable", "unstable"), ("optimization", "optimized", "original")):
        mine = [r for r in shapes if r["table"] == table]
        assert {(r["a"], r["b"]) for r in mine} == {(a, b)}
        assert {r["metric"] for r in mine if r["tag"] == "all"} == {"shapes_geneval", "shapes_reward", "stability"}
        assert [r["tag"] for r in mine if r["metric"] == "shapes_geneval"] == ["all", *TAGS]
        for r in mine:
            assert r["dim"] == 256 and r["n"] == (6 if r["tag"] == "all" else 1)
            assert r["wins"] + r["ties"] + r["losses"] == r["n"]
            assert 0 < r["sign_p"] <= 1
            decided = r["wins"] + r["losses"]  # the sign test drops ties; scipy's exact two-sided binomial test
            assert r["sign_p"] == pytest.approx(binomtest(r["wins"], decided).pvalue if decided else 1.0, abs=1e-12)
            assert 0 <= r["ci_low"] <= r["win_rate"] <= r["ci_high"] <= 1
            if r["metric"] != "stability":
                assert 0 <= r["mean_a"] <= 1 and 0 <= r["mean_b"] <= 1
    assert {r["dim"] for r in rows} == {64, 256}  # the digits figures sit next to the shapes model
    committed = hashlib.sha256((ROOT / "weights" / "small-shapes" / "training.json").read_bytes()).hexdigest()[:12]
    assert summary["weights"][0] == {"model": "small_shapes", "folder": "weights/small-shapes",
                                     "training_sha": committed, "snapshot": str(out / "weights" / "small-shapes")}
    assert [(r["model"], r["dim"], r["select_prompts"], r["optimize_prompts"]) for r in summary["runs"]] == [
        ("small_shapes", 256, 6, 6)]
    assert summary["runs"][0]["lr"] == pytest.approx(reproduce.paper_equivalent_lr(256, 1))
    run = json.loads((out / "select_small_shapes" / "run.json").read_text())["settings"]
    assert run["method.num_seeds"] == 4 and run["method.seeds_per_prompt"] is True
    text = (out / "summary.md").read_text()
    assert committed in text and "| 256 | small_shapes (g 2) | stable vs unstable | shapes_geneval | 6 |" in text
    assert "| 64 | small_digits (g 1) | stable vs unstable | digit_classifier | 100 | 0.535 | 0.951 | 13 / 0 / 87 |" in text


def test_a_weights_snapshot_is_kept_for_a_resumed_run(tmp_path, capsys):
    first = reproduce.snapshot_weights("small_shapes", tmp_path)
    committed = ROOT / "weights" / "small-shapes" / "training.json"
    assert first.training_sha == hashlib.sha256(committed.read_bytes()).hexdigest()[:12]
    copied = tmp_path / "weights" / "small-shapes"
    assert (copied / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        ROOT / "weights" / "small-shapes" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    (copied / "training.json").write_text("{}")  # as if the committed weights had been replaced since
    again = reproduce.snapshot_weights("small_shapes", tmp_path)
    assert again.training_sha == hashlib.sha256(b"{}").hexdigest()[:12]
    assert f"resumes on its snapshot {copied}" in capsys.readouterr().out


def test_jobs_run_the_models_in_parallel_processes_with_the_same_numbers(tmp_path):
    """jobs=2 (what `make reproduce-shapes` uses) spawns one process per model; its rows equal a sequential run's."""
    slice_ = ["prompts=[6]", "seeds=2", "optimize_prompts=[0]"]
    parallel = subprocess.run([sys.executable, "-m", "noise_exp.studies", "reproduce_shapes", *slice_, "jobs=2",
                               "models=[small_shapes,small_shapes_l]", f"out={tmp_path / 'parallel'}"], cwd=ROOT,
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    summary = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    assert [(r["model"], r["dim"], list(r["seconds"])) for r in summary["runs"]] == [
        ("small_shapes", 256, ["selection"]), ("small_shapes_l", 1024, ["selection"])]
    assert [w["model"] for w in summary["weights"]] == ["small_shapes", "small_shapes_l", "small_digits"]
    rows = summary["comparisons"]
    assert {(r["model"], r["table"]) for r in rows if r["dim"] != 64} == {("small_shapes", "selection"),
                                                                          ("small_shapes_l", "selection")}
    assert study(*slice_, "models=[small_shapes]", f"out={tmp_path / 'sequential'}") == 0
    sequential = json.loads((tmp_path / "sequential" / "summary.json").read_text())["comparisons"]
    assert [r for r in rows if r["model"] == "small_shapes"] == [r for r in sequential if r["model"] == "small_shapes"]


def test_from_runs_recounts_an_earlier_run_with_the_reward_tie_tolerance(tmp_path):
    """stable vs unstable on four prompts; shapes_reward differs by 1.3e-5, 2e-4, -0.3 and 0.4: under
    conf/config.yaml's 1e-3, 1 win / 2 ties / 1 loss (win rate 0.5, sign test p = 1); counted exactly it would be
    3 / 0 / 1 (p = 0.625). The judge's 1 - 0, 0 - 0, 1 - 1, 0 - 1 is 1 / 2 / 1 either way."""
    from tests.support.runs import write_synthetic_run

    captions = ["a circle", "a red square", "two triangles", "a blue square above a red triangle"]
    stable, unstable = (0.9990130, 0.5002, 0.2, 0.9), (0.9990, 0.5, 0.5, 0.5)
    judge = {"stable": (1.0, 0.0, 1.0, 0.0), "unstable": (0.0, 0.0, 1.0, 1.0)}
    metrics = {"shapes_reward": {("shapes_bench", i, v): s[i] for v, s in (("stable", stable), ("unstable", unstable))
                                 for i in range(4)},
               "shapes_geneval": {("shapes_bench", i, v): judge[v][i] for v in judge for i in range(4)}}
    write_synthetic_run(tmp_path / "select_small_shapes", {"shapes_bench": captions}, ("stable", "unstable"),
                        metrics=metrics)
    run = {"model": "small_shapes", "dim": 256, "guidance": 2.0, "select_prompts": 4, "optimize_prompts": 0,
           "lr": 1.0, "seconds": {"selection": 60.0}}
    earlier = {"command": "python -m noise_exp.studies reproduce_shapes", "args": {"threads": 1, "seeds": 4, "steps": 1},
               "finished_utc": "then", "wall_s": 60.0, "load_average": [1.0, 1.0], "runs": [run], "weights": [],
               "comparisons": []}
    (tmp_path / "summary.json").write_text(json.dumps(earlier))
    assert study("from_runs=true", f"out={tmp_path}") == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {(r["metric"], r["tag"]): r for r in summary["comparisons"] if r["model"] == "small_shapes"}
    reward, geneval = rows[("shapes_reward", "all")], rows[("shapes_geneval", "all")]
    assert (reward["wins"], reward["ties"], reward["losses"]) == (1, 2, 1)
    assert reward["win_rate"] == 0.5 and reward["sign_p"] == 1.0
    assert (geneval["wins"], geneval["ties"], geneval["losses"]) == (1, 2, 1)
    assert summary["tie_tolerance"]["shapes_reward"] == 1e-3 and summary["wall_s"] == 60.0
    text = (tmp_path / "summary.md").read_text()
    assert "| 1 / 2 / 1 | 0.50 [0.15, 0.85] | 1 |" in text and "shapes_reward |A - B| <= 0.001" in text
    assert study("from_runs=true", f"out={tmp_path / 'none'}") == 2  # no earlier run there
