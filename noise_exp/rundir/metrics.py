"""The run folder's `metrics.json`: which way each scored results.csv column is better, recorded when the column is
scored (`{metric: {"higher_is_better": bool}}`), so that reports count win rates without importing the evaluators."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes

METRICS_FILE = "metrics.json"


def evaluator_directions(evaluators: Mapping[str, Any]) -> dict[str, bool]:
    """metric -> higher_is_better, as each evaluator declares it (`Evaluator.higher_is_better`, default True)."""
    return {name: bool(getattr(evaluator, "higher_is_better", True)) for name, evaluator in evaluators.items()}


def read_directions(run_dir: Path) -> dict[str, bool]:
    """metric -> higher_is_better as the folder records it; {} for a folder scored before metrics.json existed."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        directions = {str(metric): entry["higher_is_better"] for metric, entry in entries.items()}
        if not all(isinstance(value, bool) for value in directions.values()):
            raise TypeError("higher_is_better must be true or false")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise NoiseExpError(f"{path} is not a record of metric directions ({err}); score the run again "
                            f"(python -m noise_exp.score) to rewrite it") from None
    return directions


def runs_directions(run_dirs: Iterable[Path | str]) -> dict[str, bool]:
    """metric -> higher_is_better over several run folders' records; two runs that record one metric both ways
    cannot be counted together: NoiseExpError naming both."""
    seen: dict[str, tuple[bool, Path]] = {}
    for run_dir in dict.fromkeys(Path(run) for run in run_dirs):
        for metric, higher in read_directions(run_dir).items():
            first_higher, first_run = seen.setdefault(metric, (higher, run_dir))
            if first_higher != higher:
                way = {True: "higher", False: "lower"}
                raise NoiseExpError(f"{first_run / METRICS_FILE} records {metric} as {way[first_higher]}-is-better "
                                    f"but {run_dir / METRICS_FILE} as {way[higher]}-is-better: their win rates cannot "
                                    f"be counted together (score both runs with the same evaluator)")
    return {metric: higher for metric, (higher, _) in seen.items()}


def record_directions(run_dir: Path, directions: Mapping[str, bool]) -> None:
    """Merge `directions` into the folder's metrics.json (atomically): a metric scored again takes its new scorer's."""
    if not directions:
        return
    merged = {**read_directions(run_dir), **{name: bool(value) for name, value in directions.items()}}
    text = json.dumps({name: {"higher_is_better": merged[name]} for name in sorted(merged)}, indent=1) + "\n"
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, text.encode("utf-8"))
