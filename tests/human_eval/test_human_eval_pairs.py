"""Pairs from run and sweep folders, the path checks, and the per-annotator blinding order."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from noise_exp.errors import NoiseExpError
from noise_exp.human_eval.pairs import (
    annotator_sequence,
    build_pairs,
    image_for_side,
    parse_comparisons,
    shown_order,
)
from tests.human_eval.helpers import make_run


def test_run_folder_gives_conventional_pairs(run_folder: Path):
    pair_set = build_pairs(run_folder)
    comparisons = sorted({pair.comparison for pair in pair_set.pairs})
    assert comparisons == ["optimized:original", "stable:unstable"]
    assert len(pair_set.pairs) == 8 and not pair_set.skipped
    pair = pair_set.by_id()["./drawbench/2/stable-vs-unstable"]
    assert pair.image_a == (run_folder / "images/2_stable.png").resolve()
    assert pair.prompt == "a photo of object number 2"


def test_sweep_folder_collects_every_run(tmp_path: Path):
    make_run(tmp_path / "sweep" / "0", n_prompts=2)
    make_run(tmp_path / "sweep" / "1", n_prompts=3, variants=("original", "optimized", "baseline"))
    pair_set = build_pairs(tmp_path / "sweep", parse_comparisons("optimized:original,optimized:baseline"))
    runs = {pair.run for pair in pair_set.pairs}
    assert runs == {"0", "1"}
    assert len(pair_set.pairs) == 2 + 3 * 2
    assert len(pair_set.by_id()) == len(pair_set.pairs)


def test_images_outside_the_folder_are_never_paired(tmp_path: Path):
    run = make_run(tmp_path / "run", n_prompts=3)
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", run / "images" / "link.png")
    results = pd.read_csv(run / "results.csv")
    results.loc[(results.prompt_id == 0) & (results.variant == "stable"), "image"] = "../secret.png"
    results.loc[(results.prompt_id == 1) & (results.variant == "stable"), "image"] = "images/link.png"
    results.loc[(results.prompt_id == 2) & (results.variant == "stable"), "image"] = str(tmp_path / "secret.png")
    results.loc[(results.prompt_id == 2) & (results.variant == "original"), "image"] = "results.csv"
    results.to_csv(run / "results.csv", index=False)
    pair_set = build_pairs(run)
    assert {pair.comparison for pair in pair_set.pairs} == {"optimized:original"}
    assert len(pair_set.pairs) == 2 and len(pair_set.skipped) == 4
    assert all(path.is_relative_to(run.resolve()) for p in pair_set.pairs for path in (p.image_a, p.image_b))


def test_blinding_order_is_per_annotator_and_stable(run_folder: Path):
    pairs = build_pairs(run_folder).pairs
    alice = [shown_order("alice", pair) for pair in pairs]
    assert alice == [shown_order("alice", pair) for pair in pairs]
    assert {order[0] for order in alice} == {pair.variant_a for pair in pairs} | {pair.variant_b for pair in pairs}
    orders = {name: [shown_order(name, pair) for pair in pairs] for name in ("alice", "bob", "carol", "dave")}
    assert len({tuple(order) for order in orders.values()}) > 1
    for pair in pairs:
        left, _ = shown_order("bob", pair)
        expected = pair.image_a if left == pair.variant_a else pair.image_b
        assert image_for_side("bob", pair, "left") == expected
        assert {image_for_side("bob", pair, side) for side in ("left", "right")} == {pair.image_a, pair.image_b}
    assert annotator_sequence("alice", pairs) == annotator_sequence("alice", pairs)
    assert sorted(p.pair_id for p in annotator_sequence("bob", pairs)) == sorted(p.pair_id for p in pairs)


@pytest.mark.parametrize("text", ["stable", "stable:", "stable:nonsense", "stable:stable", "a:b:c"])
def test_bad_comparisons_are_user_errors(text: str):
    with pytest.raises(NoiseExpError):
        parse_comparisons(text)


def test_folder_without_results_or_pairs_is_a_user_error(tmp_path: Path):
    with pytest.raises(NoiseExpError, match="results.csv"):
        build_pairs(tmp_path)
    make_run(tmp_path / "run", variants=("stable",))
    with pytest.raises(NoiseExpError, match="no image pairs"):
        build_pairs(tmp_path / "run")
