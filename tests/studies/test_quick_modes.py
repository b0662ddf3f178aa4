"""The quick modes of the studies that have no test file of their own: each runs end to end and writes its numbers."""
from __future__ import annotations

import json

import pandas as pd

from noise_exp.data.shapes import TAGS
from noise_exp.studies.__main__ import main


def test_the_judge_quick_mode_prints_one_row_per_size_and_level(capsys):
    assert main(["judge", "quick=true"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 32 |")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "1"]
    assert rows[0].split(" | ")[2:4] == ["60", "60/60 = 1.0000"]  # clean renders: the judge is exact


def test_the_shapes_accuracy_quick_mode_judges_one_prompt_per_tag(tmp_path):
    out = tmp_path / "accuracy.json"
    assert main(["shapes_accuracy", "quick=true", f"out={out}"]) == 0
    summary = json.loads(out.read_text())
    assert (summary["model"], summary["dataset"], summary["seed_offset"]) == ("small_shapes", "shapes_bench", 0)
    tags = {name: tag for name, tag in summary["tags"].items() if name != "overall"}
    assert list(tags) == list(TAGS) and all(tag["n"] == 1 and tag["correct"] in (0.0, 1.0) for tag in tags.values())
    assert summary["tags"]["overall"]["correct"] == sum(tag["correct"] for tag in tags.values()) / len(TAGS)


def test_the_correlation_quick_mode_fills_one_bank_and_reads_it_twice(tmp_path):
    """4 digit prompts x K = 4 scored candidates at guidance 1: the bank, the five picks and the correlation."""
    assert main(["correlation", "quick=true", f"out={tmp_path}"]) == 0
    run = pd.read_csv(tmp_path / "select_g1" / "results.csv")
    assert sorted(run["prompt_id"].unique()) == [0, 1, 2, 3]
    picks = pd.read_csv(tmp_path / "rules_g1" / "results.csv")
    assert set(picks["variant"]) == {"stable", "unstable", "random", "best_digit_classifier", "oracle_digit_realism"}
    assert len(picks) == 4 * 5
    stable = picks[picks["variant"] == "stable"].set_index("prompt_id")["stability"]
    unstable = picks[picks["variant"] == "unstable"].set_index("prompt_id")["stability"]
    assert (stable >= unstable).all()
    correlation = pd.read_csv(tmp_path / "correlation_g1" / "correlation.csv")
    assert set(correlation["score"]) == {"digit_classifier", "digit_realism"}
    assert (correlation["prompts"] == 4).all() and (correlation["candidates"] == 16).all()
    assert correlation["rho"].between(-1, 1).all()
