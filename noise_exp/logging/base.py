"""The interface every experiment tracker implements, and the tracker that records nothing."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import pandas as pd

# (caption, image A, image B): e.g. ("3: stable vs unstable", images/3_stable.png, images/3_unstable.png)
ImagePair = tuple[str, Path, Path]


@runtime_checkable
class RunLogger(Protocol):
    """What a job and the merge step tell a tracker. Implementations swallow their own errors."""

    def start(self, config: Mapping[str, Any], run_dir: Path) -> None:
        """Open a tracked run for the job (or the merge step) writing to `run_dir`; `config` is the resolved config."""

    def log_prompt(self, rows: Sequence[Mapping[str, Any]], trace: Sequence[Mapping[str, Any]],
                   image_pairs: Sequence[ImagePair]) -> None:
        """One finished prompt: its results.csv rows (one per variant), its optimization_trace.csv rows
        (empty for selection) and the image pairs to compare side by side."""

    def log_summary(self, tables: Mapping[str, pd.DataFrame], winning_rate_frames: Mapping[str, pd.DataFrame],
                    figures: Mapping[str, Path] | None = None, settings: Sequence[str] = ()) -> None:
        """The report of a run or a merged sweep: mean tables (Tables 1/2 layout), winning rates
        (long format: dataset, a, b, metric, win_rate, ci_low, ci_high, ...) and PNG figures; `settings` are the
        frames' setting columns of a sweep (`num_steps`, `lr`), one value per setting in every key and chart."""

    def finish(self) -> None:
        """Close the run; safe to call twice."""


class NullLogger:
    """`logger=none`: every call does nothing."""

    def start(self, config: Mapping[str, Any], run_dir: Path) -> None:
        pass

    def log_prompt(self, rows: Sequence[Mapping[str, Any]], trace: Sequence[Mapping[str, Any]],
                   image_pairs: Sequence[ImagePair]) -> None:
        pass

    def log_summary(self, tables: Mapping[str, pd.DataFrame], winning_rate_frames: Mapping[str, pd.DataFrame],
                    figures: Mapping[str, Path] | None = None, settings: Sequence[str] = ()) -> None:
        pass

    def finish(self) -> None:
        pass

    def __enter__(self) -> "NullLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
