"""Join the run folders of a sweep (or of shards) into one results table and one report.

`python -m noise_exp.merge multirun/table1 [--out multirun/table1/merged]`
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from noise_exp.errors import NoiseExpError
from noise_exp.scoring import write_results_atomically


def find_runs(folder: Path) -> list[Path]:
    """Every run folder (one holding results.csv) below `folder`, excluding earlier merges."""
    runs = sorted(p.parent for p in Path(folder).rglob("results.csv") if "merged" not in p.relative_to(folder).parts)
    if not runs:
        raise NoiseExpError(f"no run folders with results.csv under {folder}")
    return runs


def merge_runs(folder: Path, out_dir: Path | None = None) -> Path:
    """Concatenate the runs' results (with a `run` column), check each prompt/variant appears once per
    configuration, and write `<out>/results.csv` and the report. Returns the output folder."""
    folder = Path(folder)
    out_dir = Path(out_dir) if out_dir else folder / "merged"
    runs = find_runs(folder)
    frames = []
    for run in runs:
        frame = pd.read_csv(run / "results.csv", keep_default_na=False)
        name = str(run.relative_to(folder)) if run != folder else "."
        frame.insert(0, "run", name)
        for column in ("image", "noise", "reference"):
            if column in frame:  # keep paths valid from the merged folder
                frame[column] = [str((run / p).resolve()) if p else "" for p in frame[column]]
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results_atomically(merged, out_dir)
    from noise_exp.report import write_report

    write_report(runs, out_dir / "report")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noise_exp.merge", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="sweep folder, e.g. multirun/table1")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <folder>/merged)")
    args = parser.parse_args(argv)
    try:
        out = merge_runs(args.folder, args.out)
    except NoiseExpError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"merged: {out / 'results.csv'}\nreport: {out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
