"""`python -m noise_exp.score <run_dir> evaluator=[shapes_geneval,...]` on a tiny run folder of rendered images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from noise_exp import score as score_cli
from noise_exp.data.shapes import parse_caption
from noise_exp.data.shapes_render import render
from noise_exp.report.tags import run_tag_accuracy
from tests.support import runs

PROMPTS = ["a circle", "a square and a triangle", "three yellow circles", "a green square",
           "a red circle left of a blue triangle", "a red square and a blue circle"]
WRONG = {"three yellow circles": "two yellow circles", "a red circle left of a blue triangle":
         "a red circle right of a blue triangle"}  # what the `unstable` images show instead


@pytest.fixture
def shapes_run(tmp_path):
    """A run folder whose `stable` images show their prompt and `unstable` images a near miss for two prompts."""
    run = runs.write_synthetic_run(tmp_path / "run", {"shapes_bench": PROMPTS}, ("stable", "unstable"))
    frame = pd.read_csv(run / "results.csv")
    rng = np.random.default_rng(0)
    for row in frame.itertuples():
        shown = WRONG.get(row.prompt, row.prompt) if row.variant == "unstable" else row.prompt
        render(parse_caption(shown), rng, 64).image.save(run / row.image)
    return run


def test_score_cli_judges_each_rows_prompt(shapes_run, capsys):
    assert score_cli.main([str(shapes_run), "evaluator=[shapes_geneval,shapes_reward]"]) == 0
    assert "scored 12 rows" in capsys.readouterr().out
    frame = pd.read_csv(shapes_run / "results.csv")
    assert frame["shapes_reward"].between(0, 1).all()
    expected = [0.0 if (variant == "unstable" and prompt in WRONG) else 1.0
                for prompt, variant in zip(frame["prompt"], frame["variant"])]
    assert frame["shapes_geneval"].tolist() == expected
    accuracy = run_tag_accuracy(shapes_run)
    assert accuracy.loc["stable"].tolist() == [1.0] * 7
    assert accuracy.loc["unstable", "counting"] == 0.0 and accuracy.loc["unstable", "position"] == 0.0
    assert accuracy.loc["unstable", "overall"] == pytest.approx(4 / 6)


def test_prompt_outside_the_grammar_is_one_line_naming_it(shapes_run, capsys):
    frame = pd.read_csv(shapes_run / "results.csv")
    frame.loc[3, "prompt"] = "a photo of a cat"
    frame.to_csv(shapes_run / "results.csv", index=False)
    assert score_cli.main([str(shapes_run), "evaluator=[shapes_geneval]"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "'a photo of a cat' is not a shapes-world caption" in error
