"""docs/extending.md's "add an evaluator": a scorer in the test tree (my_scorer.py) plus one yaml scores a run's
images (a results.csv column and winning rates in the report) and a finished run (`python -m noise_exp.score`), with
no other file touched; its numbers are the colourfulness of the saved PNGs, recomputed here."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from noise_exp.runner import run_experiment
from noise_exp.score import main as score_main
from tests.conftest import compose_cfg
from tests.extending import SEARCHPATH, named_in_project
from tests.extending.my_scorer import colourfulness


def test_an_evaluator_added_as_one_module_and_one_yaml_scores_a_run_and_a_finished_run(tmp_path):
    run_dir = tmp_path / "run"
    run_experiment(compose_cfg([SEARCHPATH, "model=tiny_sd", "dataset.limit=2", "method.num_seeds=2",
                                "save_noise=false", "evaluator=[colourfulness]"]), run_dir)
    results = pd.read_csv(run_dir / "results.csv")
    expected = [colourfulness(np.asarray(Image.open(run_dir / image).convert("RGB"))) for image in results["image"]]
    assert len(results) == 4 and results["colourfulness"].tolist() == pytest.approx(expected, rel=1e-6)
    assert results["colourfulness"].min() > 0  # the tiny model's noise images are colourful
    rates = pd.read_csv(run_dir / "report" / "winning_rates.csv").set_index("metric")
    assert (rates.loc["colourfulness", "a"], rates.loc["colourfulness", "n"]) == ("stable", 2)
    # the finished run scored again from its images, as `python -m noise_exp.score <run> evaluator=[colourfulness]`
    assert score_main([str(run_dir), SEARCHPATH, "evaluator=[colourfulness]"]) == 0
    assert pd.read_csv(run_dir / "results.csv")["colourfulness"].tolist() == pytest.approx(expected, rel=1e-6)
    assert named_in_project("colourfulness", "Colourfulness") == []
