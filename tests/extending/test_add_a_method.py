"""Issue 21's "add a method": a class in the test tree plus one yaml on Hydra's search path, and no other file
touched, gets its images saved, its labels and winning rates in the report and its pairs on the human-eval page."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from noise_exp.human_eval.pairs import build_pairs
from noise_exp.methods.method import REGISTRY, validate_variants
from noise_exp.methods.registry import method_classes
from noise_exp.report import write_report
from noise_exp.runner import run_experiment
from tests.conftest import compose_cfg

HERE = Path(__file__).parent
REPO = HERE.parents[1]
OVERRIDES = [f"hydra.searchpath=[file://{HERE / 'conf'}]", "method=select_median", "model=tiny_sd",
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
    named = [path for folder in ("noise_exp", "conf") for path in (REPO / folder).rglob("*")
             if path.suffix in (".py", ".yaml")
             and any(word in path.read_text() for word in ("select_median", "MedianSelection", "Median-stability"))]
    assert named == []
