"""The reproduce_small study writes summary.csv in the format of the committed reference file that reproduce_shapes
reads for its digits rows; the committed file holds docs/small_model.md's numbers."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from noise_exp.studies.__main__ import main as studies
from noise_exp.studies.reproduce_shapes import digits_comparisons
from noise_exp.studies.reproduce_small import SUMMARY_COLUMNS
from tests.conftest import ROOT

REFERENCE = ROOT / "results" / "reference" / "reproduce_small.csv"
# the rows reproduce_shapes carried in code before the studies moved (scripts/reproduce_shapes.py DIGITS_FIGURES):
# (table, guidance, metric, n, A wins, mean A, mean B), ties none
FIGURES = [("selection", 1.0, "digit_classifier", 100, 13, 0.535, 0.951),
           ("selection", 1.0, "digit_realism", 100, 2, -23.77, -12.65),
           ("selection", 1.0, "stability", 100, 100, 0.982, 0.324),
           ("selection", 3.0, "digit_classifier", 50, 16, 0.968, 0.999),
           ("selection", 3.0, "digit_realism", 50, 0, -19.15, -11.80),
           ("optimization", 3.0, "digit_classifier", 50, 22, 0.9976, 0.9983),
           ("optimization", 3.0, "digit_realism", 50, 5, -13.54, -13.31),
           ("optimization", 3.0, "stability", 50, 50, 0.612, 0.531)]


def test_the_committed_reference_holds_the_documented_figures():
    frame = pd.read_csv(REFERENCE)
    assert tuple(frame.columns) == SUMMARY_COLUMNS
    assert [(r.table, r.guidance, r.metric, r.n, r.wins, r.mean_a, r.mean_b) for r in frame.itertuples()] == FIGURES
    assert (frame["ties"] == 0).all() and (frame["wins"] + frame["losses"] == frame["n"]).all()
    doc = " ".join((ROOT / "docs" / "small_model.md").read_text().split())
    for table, _, metric, n, wins, mean_a, mean_b in FIGURES:
        if (table, metric) == ("selection", "stability") or wins == n:  # shown as "100/100" (no rate)
            assert f"| {mean_a:.3f} | {mean_b:.3f} | {wins}/{n} |" in doc, metric
        elif metric != "stability" and n == 100 or table == "optimization":
            assert re.search(rf"\| {mean_a:g} \| {mean_b:g} \| {wins}/{n} = ", doc), (table, metric)
        else:  # guidance-3 selection: in the text
            assert re.search(rf"{wins} of {n} on {metric} \({mean_a:g} vs {mean_b:g}0*,", doc), metric


def test_reproduce_shapes_reads_the_committed_rows():
    rows = digits_comparisons(REFERENCE)
    assert [(r.table, r.guidance, r.metric, r.n, r.wins, r.mean_a, r.mean_b) for r in rows] == FIGURES
    assert {(r.a, r.b) for r in rows if r.table == "selection"} == {("stable", "unstable")}
    assert all(r.model == "small_digits" and r.dim == 64 and r.ties == 0 for r in rows)


def test_the_quick_run_writes_a_summary_reproduce_shapes_reads(tmp_path):
    out = tmp_path / "small"
    assert studies(["reproduce_small", "quick=true", f"out={out}"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    metrics = ["digit_classifier", "digit_realism", "stability"]
    assert [(r.table, r.guidance, r.metric, r.n) for r in summary.itertuples()] == [
        ("selection", 1.0, m, 10) for m in metrics] + [("optimization", 3.0, m, 2) for m in metrics]
    assert (summary["wins"] + summary["ties"] + summary["losses"] == summary["n"]).all()
    rows = digits_comparisons(out / "summary.csv")
    assert [(r.table, r.metric, r.n, r.wins, r.ties, r.losses) for r in rows] == [
        (r.table, r.metric, r.n, r.wins, r.ties, r.losses) for r in summary.itertuples()]
    for row, expected in zip(rows, summary.itertuples()):
        assert (row.mean_a, row.mean_b) == (expected.mean_a, expected.mean_b)
        assert row.win_rate == pytest.approx((expected.wins + expected.ties / 2) / expected.n)
