"""GenEval-style accuracy per tag of a run folder scored by the shapes world's judge (`evaluator=shapes_geneval`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from noise_exp.data.shapes import TAGS
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.shapes import ShapesGenEval, tag_accuracy
from noise_exp.rundir.results import RESULTS_FILE, read_results


def run_tag_accuracy(run_dir: Path, column: str = ShapesGenEval.name) -> pd.DataFrame:
    """Per-variant, per-tag accuracy of a scored run folder: a DataFrame (rows: variants; columns: tags, overall)."""
    frame = read_results(Path(run_dir))
    if column not in frame.columns:
        raise NoiseExpError(f"{Path(run_dir) / RESULTS_FILE} has no {column!r} column: score it first "
                            f"(python -m noise_exp.score {run_dir} evaluator=[{column}])")
    frame = frame[frame[column].notna()]
    rows = {variant: tag_accuracy(list(group["prompt"].astype(str)), list(group[column]))
            for variant, group in frame.groupby("variant", sort=False)}
    return pd.DataFrame.from_dict(rows, orient="index")[[t for t in (*TAGS, "overall")
                                                          if any(t in r for r in rows.values())]]
