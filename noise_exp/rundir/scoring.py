"""Scoring a run folder: one results.csv column per evaluator, computed from the saved images.

Used after generation in the same run and standalone (`python -m noise_exp.score`). Images are never
regenerated; rows without an image get NaN. Reference-based scorers (LPIPS, SSIM, CLIP-S image mode) read the
optional `reference` column (a path relative to the run folder).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import Evaluator
from noise_exp.imaging import open_image
from noise_exp.rundir.lock import RunLock
from noise_exp.rundir.metrics import evaluator_directions, record_directions
from noise_exp.rundir.results import RESULTS_FILE, read_results, write_results
from noise_exp.rundir.store import RunStore

CHUNK = 64  # images held in memory at once


def _load(run_dir: Path, relative: str) -> Image.Image:
    return open_image(run_dir / relative).convert("RGB")


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


@dataclass(frozen=True)
class ScoreItem:
    """One image to score: its path relative to the run folder, its prompt and optional reference image."""

    image: str
    prompt: str
    reference: str = ""


def score_items(run_dir: Path, items: Sequence[ScoreItem], evaluators: Mapping[str, Evaluator]) -> dict[str, np.ndarray]:
    """Every evaluator's score of every item, CHUNK images in memory at a time; items without an image get NaN."""
    run_dir = Path(run_dir)
    rows = [index for index, item in enumerate(items) if item.image]
    with_references = any(item.reference for item in items)
    for name, evaluator in evaluators.items():
        if getattr(evaluator, "needs_references", False) and not with_references:
            raise NoiseExpError(f"evaluator {name} needs reference images, but {run_dir / RESULTS_FILE} has no "
                                f"`reference` column")
    scores = {name: np.full(len(items), np.nan, dtype=np.float64) for name in evaluators}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        pictures = [_load(run_dir, items[i].image) for i in chunk]
        prompts = [items[i].prompt for i in chunk]
        refs = [_load(run_dir, items[i].reference) for i in chunk] if all(items[i].reference for i in chunk) else None
        for name, evaluator in evaluators.items():
            values = evaluator.score(pictures, prompts=prompts, references=refs)
            if values.shape != (len(chunk),):
                raise NoiseExpError(f"evaluator {name} returned shape {tuple(values.shape)} for {len(chunk)} images")
            scores[name][chunk] = values.double().numpy()
    return scores


def score_records(store: RunStore, evaluators: Mapping[str, Evaluator], missing_only: bool = False) -> int:
    """Score the kept images of a run folder's records and store the scores in the records (so any rebuild of
    results.csv keeps them) and each evaluator's direction in metrics.json; the caller holds the folder's lock and
    rebuilds the tables. Returns images scored."""
    targets = []  # (record, variant, evaluator names to compute)
    for record in store.records():
        for variant in record["variants"]:
            have = variant.get("scores") or {}
            names = [n for n in evaluators if not (missing_only and n in have)]
            if variant.get("image") and names:
                targets.append((record, variant, names))
    by_names: dict[tuple[str, ...], list] = {}
    for target in targets:
        by_names.setdefault(tuple(target[2]), []).append(target)
    for names, group in by_names.items():
        items = [ScoreItem(v["image"], r["prompt"], v.get("reference", "")) for r, v, _ in group]
        scores = score_items(store.run_dir, items, {n: evaluators[n] for n in names})
        for index, (record, variant, _) in enumerate(group):
            variant["scores"] = {**(variant.get("scores") or {}), **{n: float(scores[n][index]) for n in names}}
    for record in {id(r): r for r, _, _ in targets}.values():
        store.write_record(record)
    record_directions(store.run_dir, evaluator_directions(evaluators))
    return len(targets)


def score_run(run_dir: Path, evaluators: Mapping[str, Evaluator]) -> pd.DataFrame:
    """Add (or overwrite) one float column per evaluator in `run_dir/results.csv`, and its direction in
    metrics.json (`noise_exp.rundir.metrics`); returns the new frame.

    A run folder with per-prompt records keeps the scores in them (under the folder's lock); a results.csv
    without records (a merged sweep, a table made elsewhere) is scored in place. The report is not touched: the
    `score` CLI and the runner refresh it.
    """
    run_dir = Path(run_dir)
    frame = read_results(run_dir)
    if not evaluators:
        return frame
    if not any(_cell(value) for value in frame["image"]):
        raise NoiseExpError(f"{run_dir} has no images to score (it was run with save_images=[]); rerun it with "
                            f"the variants to score in save_images")
    store = RunStore(run_dir)
    if store.records():
        with RunLock(run_dir):
            score_records(store, evaluators)
            store.write_tables()
    else:
        items = [ScoreItem(_cell(row.image), str(row.prompt), _cell(getattr(row, "reference", "")))
                 for row in frame.itertuples(index=False)]
        for name, values in score_items(run_dir, items, evaluators).items():
            frame[name] = values
        write_results(frame, run_dir)
        record_directions(run_dir, evaluator_directions(evaluators))
    return read_results(run_dir)
