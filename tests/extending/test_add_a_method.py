"""Issue 21's "add a method": a class in the test tree plus one yaml on Hydra's search path, and no other file
touched, gets its images saved, its labels and winning rates in the report, its pairs on the human-eval page and
its row in the equal-compute study (`make compare`)."""
from __future__ import annotations

import sys

import pandas as pd
import pytest

from noise_exp.human_eval.pairs import build_pairs
from noise_exp.methods.method import REGISTRY, validate_variants
from noise_exp.methods.registry import compare_classes, import_targets, method_classes
from noise_exp.report.compare import compare_table
from noise_exp.studies.compare import ladder_budgets, ladder_knobs, study_overrides
from noise_exp.report import write_report
from noise_exp.runner import run_experiment
from tests.conftest import compose_cfg
from tests.extending import HERE, SEARCHPATH, named_in_project

OVERRIDES = [SEARCHPATH, "method=select_median", "model=tiny_sd",
             "dataset=drawbench", "dataset.limit=2", "save_noise=false"]


@pytest.fixture
def registry():
    """The registry as it was: the test's class must not stay registered for the tests after it."""
    before = {cls.name: cls for cls in method_classes()}  # every conf/method class imported and registered
    yield
    REGISTRY.clear()
    REGISTRY.update(before)
    sys.modules.pop("tests.extending.my_rule", None)


def test_a_method_added_as_one_module_and_one_yaml_is_saved_reported_and_paired(tmp_path, registry):
    run_dir = tmp_path / "run"
    metrics = run_experiment(compose_cfg(OVERRIDES), run_dir)
    assert metrics["objective"] == metrics["stability/median"]
    assert sorted(p.name for p in (run_dir / "images").glob("*.png")) == [
        "0_median.png", "0_unstable.png", "1_median.png", "1_unstable.png"]
    means = (run_dir / "report" / "means.md").read_text()
    assert "Median-stability noise" in means and "Unstable noise" in means
    rates = pd.read_csv(run_dir / "report" / "winning_rates.csv")
    stability = rates[rates["metric"] == "stability"].iloc[0]
    assert (stability["a"], stability["b"], stability["n"]) == ("median", "unstable", 2)
    assert stability["win_rate"] == 1.0  # the median of 3 candidates is never below the least stable one
    pairs = build_pairs(run_dir)
    assert sorted(pair.pair_id for pair in pairs.pairs) == [
        "./drawbench/0/median-vs-unstable", "./drawbench/1/median-vs-unstable"]
    from tests.extending.my_rule import MedianSelection  # imported by the run, through its yaml

    assert validate_variants(["stable", "median"], MedianSelection.variant_names()) == ["stable", "median"]
    # a fresh process that never imports the class reads the same report from the run's method.json
    REGISTRY.pop("select_median")
    fresh = tmp_path / "fresh"
    write_report([run_dir], fresh)
    assert "Median-stability noise" in (fresh / "means.md").read_text()
    assert pd.read_csv(fresh / "winning_rates.csv").equals(rates)
    # nothing outside the test tree names the method, its class or its variant's label
    assert named_in_project("select_median", "MedianSelection", "Median-stability") == []


def test_a_method_with_an_at_budget_gets_its_jobs_and_row_in_the_compare_study(tmp_path, registry):
    import_targets([HERE / "conf"])
    assert [cls.name for cls in compare_classes()] == [  # the declared baseline first, then registry order
        "random", "select", "select_median", "optimize", "best_of_n", "reward_opt"]  # it inherits select's rank
    budgets = ladder_budgets([4, 16], 20, 30, 256, "shapes_reward")  # small_shapes: K = 2 and 10 round trips
    assert ladder_knobs(budgets)["select_median"] == {"num_seeds": {"x4": 1, "x16": 9}}
    planned = study_overrides(budgets, tmp_path / "conf")
    assert planned[0] == "+compare_method=random,select,select_median,optimize,best_of_n,reward_opt"
    # the job the sweep runs for it at x16, composed as run.py would (the study's yaml on the search path)
    cfg = compose_cfg(["experiment=compare_methods", "+compare_method=select_median", "compare.budget=x16",
                       f"hydra.searchpath=[file://{HERE / 'conf'},file://{tmp_path / 'conf'}]", *planned[2:]])
    assert cfg.method._target_ == "tests.extending.my_rule.MedianSelection" and cfg.method.num_seeds == 9
    # its row in the table, its win rate against the declared baseline: 2 prompts, one win and one tie
    rows = pd.DataFrame([{"method": method, "budget": 16, "saw": "nothing", "dataset": "shapes_bench",
                          "prompt_id": i, "unet_calls": 300, "time_s": 0.1, "shapes_geneval": value[i]}
                         for method, value in (("select_median", (1.0, 0.0)), ("random", (0.0, 0.0)))
                         for i in range(2)])
    table = compare_table(rows, draws=10, tolerances={}).set_index("method")
    assert list(table.index) == ["random", "select_median"]
    assert table.loc["select_median", "shapes_geneval_win"] == pytest.approx(0.75)
