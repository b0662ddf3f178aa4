"""`write_report`: tables (CSV + Markdown), winning-rate chart and image grids for one or more run folders."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from noise_exp.human_eval.analysis import human_report_markdown
from noise_exp.report import figures, tables


@dataclass
class ReportResult:
    out_dir: Path
    means: pd.DataFrame
    winning_rates: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def markdown(self) -> Path:
        """report.md: both tables and links to the figures."""
        return self.files["report_md"]


def write_report(run_dirs: Sequence[Path], out_dir: Path, max_grid_rows: int = 8) -> ReportResult:
    """Write means.{csv,md}, winning_rates.{csv,md}, winning_rates.png, grid_<a>_vs_<b>.png and report.md."""
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = tables.load_runs(run_dirs)
    means = tables.mean_table(frame)
    rates = tables.winning_rates(frame)
    files: dict[str, Path] = {}

    layout = tables.paper_layout(means)
    means.to_csv(out_dir / "means.csv", index=False)
    (out_dir / "means.md").write_text(tables.to_markdown(layout))
    files.update(means_csv=out_dir / "means.csv", means_md=out_dir / "means.md")

    rates.to_csv(out_dir / "winning_rates.csv", index=False)
    readable = rates.assign(comparison=rates["a"] + " vs " + rates["b"],
                            metric=rates["metric"].map(lambda m: tables.METRIC_LABELS.get(m, m)))
    readable = readable[["dataset", "comparison", "metric", "n", "wins", "ties", "losses", "win_rate", "ci_low",
                         "ci_high"]]
    (out_dir / "winning_rates.md").write_text(tables.to_markdown(readable, digits=3))
    files.update(winning_rates_csv=out_dir / "winning_rates.csv", winning_rates_md=out_dir / "winning_rates.md")
    if not rates.empty:
        files["winning_rates_png"] = figures.winning_rate_chart(rates, out_dir / "winning_rates.png")

    by_run = {str(run_dir): run_dir for run_dir in run_dirs}
    metrics = tables.metric_columns(frame)
    present = set(frame["variant"].astype(str))
    for a, b in tables.COMPARISONS:
        if a in present and b in present:
            grid = figures.image_grid(frame, by_run, a, b, out_dir / f"grid_{a}_vs_{b}.png", max_rows=max_grid_rows,
                                      metric=metrics[0] if metrics else None)
            if grid is not None:
                files[f"grid_{a}_vs_{b}"] = grid

    summary = ["# noise-exp report", "", "Runs: " + ", ".join(f"`{run_dir}`" for run_dir in run_dirs), "",
               "## Mean scores (layout of the paper's Tables 1 and 2)", "", tables.to_markdown(layout),
               "## Winning rates (share of prompts where A beats B; ties count half; 95% Wilson score interval)", "",
               tables.to_markdown(readable, digits=3)]
    summary += [f"![{name}]({path.name})" for name, path in files.items() if path.suffix == ".png"]
    summary += ["", human_report_markdown(_votes_folder(run_dirs))]
    (out_dir / "report.md").write_text("\n".join(summary) + "\n")
    files["report_md"] = out_dir / "report.md"
    return ReportResult(out_dir=out_dir, means=means, winning_rates=rates, files=files)


def _votes_folder(run_dirs: Sequence[Path]) -> Path:
    """Human votes live in the served folder: the run itself, or the sweep folder that holds the runs."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    return Path(os.path.commonpath([str(p.resolve()) for p in run_dirs]))
