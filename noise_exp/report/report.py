"""`write_report`: tables (CSV + Markdown), winning-rate chart and image grids for one or more run folders."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from noise_exp.files import atomic_write_bytes
from noise_exp.report import curves, figures, tables
from noise_exp.report.human import human_report_markdown
from noise_exp.report.sweep import natural_key, tie_tolerances
from noise_exp.rundir.declaration import read_declaration

UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")  # characters of a setting value replaced in grid file names


@dataclass
class ReportResult:
    out_dir: Path
    means: pd.DataFrame
    winning_rates: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    settings: tuple[str, ...] = ()  # the setting columns the tables split by (none for one run or when pooled)

    @property
    def markdown(self) -> Path:
        """report.md: both tables and links to the figures."""
        return self.files["report_md"]


def write_report(run_dirs: Sequence[Path], out_dir: Path, max_grid_rows: int = 8, pool: bool = False,
                 max_grid_settings: int = 4, tie_tolerance: Mapping[str, float] | None = None) -> ReportResult:
    """Write means.{csv,md}, winning_rates.{csv,md}, winning_rates.png, grid_<a>_vs_<b>[_<setting>].png and
    report.md. Several runs give one table row per distinct setting (`noise_exp.report.sweep`) unless `pool`;
    image grids are drawn for the first `max_grid_settings` settings. Winning rates use the runs' configured tie
    tolerances (`report.tie_tolerance`), `tie_tolerance` on top."""
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    out_dir = Path(out_dir)
    sweep = tables.load_sweep(run_dirs, pool=pool)
    frame, settings = sweep.frame, list(sweep.columns)
    declarations = [read_declaration(run_dir) for run_dir in run_dirs]
    means = tables.mean_table(frame, settings, tables.variant_order(declarations))
    comparisons = tables.comparisons_for(frame["variant"], declarations)
    tolerances = tie_tolerances(run_dirs, tie_tolerance)
    lower = tables.lower_is_better(run_dirs)  # each metric's direction, as the runs recorded it (metrics.json)
    rates = tables.winning_rates(frame, comparisons, settings=settings, tie_tolerance=tolerances, lower=lower)
    files: dict[str, Path] = {}

    layout = tables.to_markdown(tables.paper_layout(means, settings, tables.labels_for(declarations), lower))
    files["means_csv"] = _write_text(out_dir / "means.csv", means.to_csv(index=False))
    files["means_md"] = _write_text(out_dir / "means.md", layout)

    readable = rates.assign(comparison=rates["a"] + " vs " + rates["b"],
                            metric=rates["metric"].map(lambda m: tables.METRIC_LABELS.get(m, m)))
    readable = tables.to_markdown(readable[[*settings, "dataset", "comparison", "metric", "n", "wins", "ties",
                                            "losses", "win_rate", "ci_low", "ci_high"]], digits=3)
    files["winning_rates_csv"] = _write_text(out_dir / "winning_rates.csv", rates.to_csv(index=False))
    files["winning_rates_md"] = _write_text(out_dir / "winning_rates.md", readable)
    if not rates.empty:
        files["winning_rates_png"] = figures.winning_rate_chart(rates, out_dir / "winning_rates.png", settings)
    files.update(_grids(frame, run_dirs, settings, out_dir, max_grid_rows, max_grid_settings, comparisons))
    if tables.NFE in frame.columns and frame[tables.NFE].notna().any():
        files["quality_vs_nfe_png"] = figures.quality_vs_nfe(frame, tables.measured_columns(frame), settings,
                                                             out_dir / "quality_vs_nfe.png")
    files.update(_curves(frame, rates, settings, out_dir))
    files.update(_stability_trace(run_dirs, sweep, out_dir))

    summary = ["# noise-exp report", "", "Runs: " + ", ".join(f"`{run_dir}`" for run_dir in run_dirs), "",
               _settings_line(sweep), "",
               "## Mean scores (layout of the paper's Tables 1 and 2; Stability: mean s(ε) of eq. 3)", "", layout,
               "## Winning rates (share of prompts where A beats B; ties count half; 95% Wilson score interval)", "",
               tables.ties_rule(tolerances, [] if rates.empty else rates["metric"]), "", readable]
    summary += [f"![{name}]({path.name})" for name, path in files.items() if path.suffix == ".png"]
    summary += ["", human_report_markdown(_votes_folder(run_dirs))]
    files["report_md"] = _write_text(out_dir / "report.md", "\n".join(summary) + "\n")
    return ReportResult(out_dir=out_dir, means=means, winning_rates=rates, files=files, settings=tuple(settings))


def _write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _settings_line(sweep: tables.Sweep) -> str:
    swept = ", ".join(f"`{column}` ({key})" for column, key in sweep.settings.keys.items())
    if not swept:
        return "Settings: one (no result-determining key differs between the runs)."
    if sweep.columns:
        return f"Settings: one table row per distinct value of {swept}."
    return f"Settings: pooled over {swept} (`--pool`)."


def _grids(frame: pd.DataFrame, run_dirs: Sequence[Path], settings: Sequence[str], out_dir: Path, max_rows: int,
           max_settings: int, comparisons: Sequence[tuple[str, str]]) -> dict[str, Path]:
    """grid_<a>_vs_<b>[_<column>-<value>...].png for each comparison present in each of the first settings,
    with each side's stability and every evaluator's score under its image."""
    by_run = {str(run_dir): run_dir for run_dir in run_dirs}
    metrics = tables.metric_columns(frame)
    files = {}
    for values, subset in tables.groups(frame, settings)[:max_settings]:
        suffix = "".join(f"_{column}-{UNSAFE.sub('-', str(value))}" for column, value in values.items())
        present = set(subset["variant"].astype(str))
        for a, b in comparisons:
            if a in present and b in present:
                name = f"grid_{a}_vs_{b}{suffix}"
                grid = figures.image_grid(subset, by_run, a, b, out_dir / f"{name}.png", max_rows=max_rows,
                                          metrics=metrics)
                if grid is not None:
                    files[name] = grid
    return files


def _curves(frame: pd.DataFrame, rates: pd.DataFrame, settings: Sequence[str], out_dir: Path) -> dict[str, Path]:
    """curves_<key>.{csv,png} for each numeric swept key (`noise_exp.report.curves`)."""
    files = {}
    for key in curves.numeric_settings(frame, settings):
        data = curves.curve_data(frame, rates, key, settings)
        files[f"curves_{key}_csv"] = _write_text(out_dir / f"curves_{key}.csv", data.to_csv(index=False))
        files[f"curves_{key}_png"] = curves.curve_figure(data, key, out_dir / f"curves_{key}.png")
    return files


def _stability_trace(run_dirs: Sequence[Path], sweep: tables.Sweep, out_dir: Path) -> dict[str, Path]:
    """stability_trace.{csv,png} when the runs optimized (optimization_trace.csv): one line per setting."""
    traces: dict[str, list[pd.DataFrame]] = {}
    order: dict[str, tuple] = {}
    for run_dir in run_dirs:
        path = Path(run_dir) / "optimization_trace.csv"
        trace = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
        if {"step", "stability"} <= set(trace.columns) and len(trace):
            values = sweep.settings.values.get(Path(run_dir), {})
            label = " ".join(f"{c}={values[c]}" for c in sweep.columns) or "all runs"
            traces.setdefault(label, []).append(trace)
            order[label] = tuple(natural_key(values[c]) for c in sweep.columns)
    if not traces:
        return {}
    data = curves.trace_data({label: pd.concat(traces[label], ignore_index=True)
                              for label in sorted(traces, key=order.__getitem__)})
    if data.empty:  # a method whose trace holds no stability (e.g. reward optimization)
        return {}
    return {"stability_trace_csv": _write_text(out_dir / "stability_trace.csv", data.to_csv(index=False)),
            "stability_trace_png": curves.trace_figure(data, out_dir / "stability_trace.png")}


def _votes_folder(run_dirs: Sequence[Path]) -> Path:
    """Human votes live in the served folder: the run itself, or the sweep folder that holds the runs."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    return Path(os.path.commonpath([str(p.resolve()) for p in run_dirs]))
