"""results.csv, the run folder's table (one row per prompt and variant, one column per score): finding the run
folders of a run or sweep folder, reading it, and replacing it atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes

RESULTS_FILE = "results.csv"
REQUIRED_COLUMNS = ("prompt_id", "prompt", "variant", "image")
MERGED = "merged"  # `python -m noise_exp.merge`'s default output folder inside a sweep


def find_runs(folder: Path) -> list[Path]:
    """The folder itself when it holds a results.csv, else every folder below it that does (a sweep), leaving out
    hidden folders and earlier merges."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoiseExpError(f"{folder} is not a folder")
    if (folder / RESULTS_FILE).is_file():
        return [folder]
    runs = sorted(path.parent for path in folder.rglob(RESULTS_FILE)
                  if not any(part.startswith(".") or part == MERGED for part in path.relative_to(folder).parts))
    if not runs:
        raise NoiseExpError(f"no run folders with {RESULTS_FILE} in {folder} or below it: not a run or sweep folder")
    return runs


def read_results(run_dir: Path, **read_csv: Any) -> pd.DataFrame:
    """`run_dir/results.csv` (`read_csv` goes to pandas.read_csv), checked to hold a run's columns."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise NoiseExpError(f"{path} does not exist: not a finished run folder")
    try:
        frame = pd.read_csv(path, **read_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise NoiseExpError(f"cannot read {path}: {err}") from err
    missing = set(REQUIRED_COLUMNS) - set(frame.columns)
    if missing:
        raise NoiseExpError(f"{path} lacks column(s) {', '.join(sorted(missing))} (see docs/CONVENTIONS.md)")
    return frame


def write_results(frame: pd.DataFrame, run_dir: Path) -> Path:
    """Replace results.csv atomically: readers never see a half-written file."""
    target = Path(run_dir) / RESULTS_FILE
    atomic_write_bytes(target, frame.to_csv(index=False).encode("utf-8"))
    return target
