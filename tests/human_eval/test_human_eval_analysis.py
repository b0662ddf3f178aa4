"""Winning rates (ties half, Wilson CI), agreement, and the report section, on hand-checked votes."""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noise_exp.report.human import (
    agreement,
    human_report_markdown,
    human_winning_rates,
    summarize,
    write_human_winning_rates_csv,
)
from noise_exp.report.tables import wilson_interval
from noise_exp.rundir.votes import DB_NAME, Vote, VoteStore


def vote(annotator: str, pair: str, winner: str, comparison=("stable", "unstable"), run=".") -> Vote:
    a, b = comparison
    choice = "tie" if winner == "tie" else ("left" if winner == a else "right")
    return Vote(annotator=annotator, pair_id=f"{run}/d/{pair}/{a}-vs-{b}", run=run, dataset="d", prompt_id=int(pair),
                comparison=f"{a}:{b}", variant_a=a, variant_b=b, left_variant=a, right_variant=b, choice=choice,
                winner=winner, created_at="2024-01-01T00:00:00+00:00")


HAND_CHECKED = [
    vote("alice", "1", "stable"), vote("bob", "1", "stable"),  # pair 1 scores 1
    vote("alice", "2", "unstable"), vote("bob", "2", "tie"),  # pair 2 scores 0.25
    vote("alice", "3", "stable"),  # pair 3 scores 1
    vote("alice", "1", "original", ("optimized", "original")),
]


def frame(votes) -> pd.DataFrame:
    return pd.DataFrame([asdict(v) for v in votes])


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories -> P=0.378, kappa=0.210.
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    items, percent, kappa = agreement(counts)
    assert items == 10 and percent == pytest.approx(0.378, abs=5e-4) and kappa == pytest.approx(0.210, abs=5e-4)
    assert math.isnan(agreement(np.array([[3, 0, 0], [2, 0, 0]]))[2])  # all in one category: undefined
    assert agreement(np.array([[1, 0, 0]]))[0] == 0


def test_summary_counts_ties_half_and_weighs_pairs_equally():
    summary = summarize(frame(HAND_CHECKED))
    assert summary.n_votes == 6 and summary.n_annotators == 2 and summary.annotators == ("alice", "bob")
    selection, optimization = summary.rates
    assert selection.comparison == "stable:unstable" and optimization.comparison == "optimized:original"
    assert selection.win_rate == pytest.approx((1 + 0.25 + 1) / 3)
    assert (selection.wins_a, selection.wins_b, selection.ties) == (3, 1, 1)
    assert (selection.n_votes, selection.n_pairs, selection.n_annotators) == (5, 3, 2)
    assert (selection.ci_low, selection.ci_high) == pytest.approx(wilson_interval(2.25, 3))  # 3 pairs scoring 1, 0.25, 1
    # pairs 1 and 2 have two raters: P = (1 + 0) / 2; category shares 2/4, 1/4, 1/4 -> Pe = 0.375
    assert selection.agreement_pairs == 2 and selection.percent_agreement == pytest.approx(0.5)
    assert selection.fleiss_kappa == pytest.approx((0.5 - 0.375) / 0.625)
    assert optimization.win_rate == 0.0 and optimization.n_annotators == 1
    assert math.isnan(optimization.percent_agreement)


def test_report_csv_and_sweep_member_lookup(tmp_path: Path):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "1").mkdir()
    store = VoteStore(sweep / DB_NAME)
    for v in HAND_CHECKED:
        store.record(vote(v.annotator, str(v.prompt_id), v.winner, (v.variant_a, v.variant_b), run="0"))
    store.record(vote("carol", "9", "unstable", run="1"))

    whole = human_report_markdown(sweep)
    assert "7 votes from 3 annotator(s)" in whole
    assert "| stable vs unstable | 56.2% |" in whole  # (1 + 0.25 + 1 + 0) / 4: run 0 pairs 1-3, run 1 pair 9
    assert "Fleiss' kappa" in whole and "Wilson" in whole

    member = human_winning_rates(sweep / "0")
    assert member.n_votes == 6 and member.rates[0].win_rate == pytest.approx(0.75)
    assert human_winning_rates(sweep / "1").n_votes == 1

    out = write_human_winning_rates_csv(sweep)
    table = pd.read_csv(out)
    assert out == sweep / "human_winning_rates.csv"
    assert list(table["comparison"]) == ["stable:unstable", "optimized:original"]
    assert table.loc[0, "n_votes"] == 6 and table.loc[0, "win_rate"] == pytest.approx(0.5625)
    assert table.loc[0, "ci_low"] < 0.5625 < table.loc[0, "ci_high"]


def test_report_without_votes_says_how_to_collect(tmp_path: Path):
    text = human_report_markdown(tmp_path)
    assert text.startswith("## Human preference") and "python -m noise_exp.human_eval serve" in text
    assert human_winning_rates(tmp_path).rates == ()
