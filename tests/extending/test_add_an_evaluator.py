"""docs/extending.md's "add an evaluator": a scorer in the test tree (my_scorer.py) plus one yaml scores a run's
images (a results.csv column and winning rates in the report) and a finished run (`python -m noise_exp.score`), with
no other file touched; its numbers are the colourfulness of the saved PNGs, recomputed here. A lower-is-better
scorer (my_cast.py) gets its win rates counted with the lower score winning and its column marked ↓, from the
direction the run folder recorded (metrics.json)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from noise_exp.runner import run_experiment
from noise_exp.score import main as score_main
from tests.conftest import compose_cfg
from tests.extending import SEARCHPATH, named_in_project
from tests.extending.my_cast import colour_cast
from tests.extending.my_scorer import colourfulness


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """One tiny run scored by both walk-through evaluators (2 prompts, stable and unstable images)."""
    run_dir = tmp_path_factory.mktemp("evaluator") / "run"
    run_experiment(compose_cfg([SEARCHPATH, "model=tiny_sd", "dataset.limit=2", "method.num_seeds=2",
                                "save_noise=false", "evaluator=[colourfulness,colour_cast]"]), run_dir)
    return run_dir


def recomputed(run_dir, score):
    results = pd.read_csv(run_dir / "results.csv")
    return [score(np.asarray(Image.open(run_dir / image).convert("RGB"))) for image in results["image"]]


def test_an_evaluator_added_as_one_module_and_one_yaml_scores_a_run_and_a_finished_run(scored_run):
    run_dir = scored_run
    results = pd.read_csv(run_dir / "results.csv")
    expected = recomputed(run_dir, colourfulness)
    assert len(results) == 4 and results["colourfulness"].tolist() == pytest.approx(expected, rel=1e-6)
    assert results["colourfulness"].min() > 0  # the tiny model's noise images are colourful
    rates = pd.read_csv(run_dir / "report" / "winning_rates.csv").set_index("metric")
    assert (rates.loc["colourfulness", "a"], rates.loc["colourfulness", "n"]) == ("stable", 2)
    # the finished run scored again from its images, as `python -m noise_exp.score <run> evaluator=[colourfulness]`
    assert score_main([str(run_dir), SEARCHPATH, "evaluator=[colourfulness]"]) == 0
    assert pd.read_csv(run_dir / "results.csv")["colourfulness"].tolist() == pytest.approx(expected, rel=1e-6)
    assert named_in_project("colourfulness", "Colourfulness") == []


def test_a_lower_is_better_evaluator_wins_by_the_lower_score_with_no_other_file_touched(scored_run):
    run_dir = scored_run
    results = pd.read_csv(run_dir / "results.csv")
    assert results["colour_cast"].tolist() == pytest.approx(recomputed(run_dir, colour_cast), rel=1e-6)
    assert json.loads((run_dir / "metrics.json").read_text()) == {
        "colour_cast": {"higher_is_better": False}, "colourfulness": {"higher_is_better": True}}
    cast = results.pivot(index="prompt_id", columns="variant", values="colour_cast")
    lower, higher = int((cast["stable"] < cast["unstable"]).sum()), int((cast["stable"] > cast["unstable"]).sum())
    assert lower != higher  # else counting the wrong way round would give the same row
    rate = pd.read_csv(run_dir / "report" / "winning_rates.csv").set_index("metric").loc["colour_cast"]
    assert (rate["a"], rate["b"], rate["wins"], rate["losses"]) == ("stable", "unstable", lower, higher)
    assert "| colour_cast ↓ |" in (run_dir / "report" / "means.md").read_text()
    assert named_in_project("colour_cast", "ColourCast") == []
