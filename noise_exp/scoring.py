"""Scoring a run folder: one results.csv column per evaluator, computed from the saved images.

Used after generation in the same run and standalone (`python -m noise_exp.score`). Images are never
regenerated; rows without an image get NaN. Reference-based scorers (LPIPS, SSIM, CLIP-S image mode) read the
optional `reference` column (a path relative to the run folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from PIL import Image

from evaluators.base import Evaluator
from noise_exp.errors import NoiseExpError
from noise_exp.imaging import open_image
from noise_exp.results import atomic_write_bytes

RESULTS = "results.csv"
CHUNK = 64  # images held in memory at once


def read_results(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise NoiseExpError(f"{path} does not exist: not a finished run folder")
    frame = pd.read_csv(path)
    missing = {"prompt_id", "prompt", "variant", "image"} - set(frame.columns)
    if missing:
        raise NoiseExpError(f"{path} lacks the columns {sorted(missing)}")
    return frame


def write_results_atomically(frame: pd.DataFrame, run_dir: Path) -> Path:
    """Replace results.csv atomically: readers never see a half-written file."""
    target = Path(run_dir) / RESULTS
    atomic_write_bytes(target, frame.to_csv(index=False).encode("utf-8"))
    return target


def _load(run_dir: Path, relative: str) -> Image.Image:
    return open_image(run_dir / relative).convert("RGB")


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def score_run(run_dir: Path, evaluators: Mapping[str, Evaluator]) -> pd.DataFrame:
    """Add (or overwrite) one float column per evaluator in `run_dir/results.csv`; returns the new frame."""
    run_dir = Path(run_dir)
    frame = read_results(run_dir)
    if not evaluators:
        return frame
    images = [_cell(value) for value in frame["image"]]
    rows = [index for index, relative in enumerate(images) if relative]
    references = [_cell(value) for value in frame["reference"]] if "reference" in frame.columns else None
    for name, evaluator in evaluators.items():
        if getattr(evaluator, "needs_references", False) and references is None:
            raise NoiseExpError(f"evaluator {name} needs reference images, but {run_dir / RESULTS} has no "
                                f"`reference` column")
    scores = {name: np.full(len(frame), np.nan, dtype=np.float64) for name in evaluators}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        pictures = [_load(run_dir, images[i]) for i in chunk]
        prompts = [str(frame["prompt"].iloc[i]) for i in chunk]
        refs = None
        if references is not None and all(references[i] for i in chunk):
            refs = [_load(run_dir, references[i]) for i in chunk]
        for name, evaluator in evaluators.items():
            values = evaluator.score(pictures, prompts=prompts, references=refs)
            if values.shape != (len(chunk),):
                raise NoiseExpError(f"evaluator {name} returned shape {tuple(values.shape)} for {len(chunk)} images")
            scores[name][chunk] = values.double().numpy()
    for name, values in scores.items():
        frame[name] = values
    write_results_atomically(frame, run_dir)
    return frame
