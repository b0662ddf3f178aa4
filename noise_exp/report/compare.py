"""The equal-compute comparison of noise methods (`experiment=compare_methods`): quality against NFEs and wall time.

`python -m noise_exp.report.compare multirun/compare_methods [--out <folder>]`

Each run folder of the sweep is one method at one rung of the budget ladder. Per (method, rung) the table gives the
mean NFEs and seconds per prompt of the method's output variant, and for every scorer the mean over prompts with a
95% percentile-bootstrap interval and the win rate against a random seed at the same rung (paired by prompt, ties
half, 95% Wilson interval; a tie is a difference within the metric's `report.tie_tolerance`, at least
1e-6). It marks which scorer each method saw (its verifier; stability for the paper's methods):
the others, and the held-out judges above all, are the fair measure. A method whose verifier is a held-out judge
stops the report.
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from noise_exp.cli import ArgumentParser
from noise_exp.errors import NoiseExpError, exit_on_user_error
from noise_exp.files import atomic_write_bytes
from noise_exp.methods.registry import compare_baseline, compare_classes
from noise_exp.report.figures import save_figure
from noise_exp.report.sweep import tie_tolerances
from noise_exp.report.tables import (LEGACY_LOWER_IS_BETTER, METRIC_LABELS, count_pairs, lower_is_better,
                                     metric_columns, tie_tolerance_of, ties_rule, to_markdown)
from noise_exp.rundir.results import find_runs, read_results

SAW_STABILITY = "stability s(ε)"


def rung_name(budget: int) -> str:
    """The key of a budget of b generations in `compare.knobs` and `compare.budget`: x<b>."""
    return f"x{budget}"


def rung_budget(name: str) -> int:
    """b from the rung name x<b>."""
    if not re.fullmatch(r"x[1-9][0-9]*", str(name)):
        raise NoiseExpError(f"compare.budget must name a rung x<generations> such as x4, got {name!r}")
    return int(str(name)[1:])


def bootstrap_interval(values: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (prompts resampled with replacement, seeded)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    resampled = np.random.default_rng(seed).choice(values, size=(draws, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class ComparedRun:
    """One job of the sweep: a method at one budget."""

    path: Path
    method: str
    variant: str  # the method's output (its main variant)
    budget: int  # in generations
    saw: str  # the scorer it selected or optimized with
    held_out: list[str] = field(default_factory=list)


def read_compared_run(run_dir: Path) -> ComparedRun:
    """What a job of `experiment=compare_methods` ran, from its `.hydra/config.yaml`."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from noise_exp.config import upgrade_targets

    saved = Path(run_dir) / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise NoiseExpError(f"{run_dir} has no .hydra/config.yaml: not a run of experiment=compare_methods")
    cfg = upgrade_targets(OmegaConf.load(saved))
    if OmegaConf.select(cfg, "compare.budget") is None:
        raise NoiseExpError(f"{saved} has no compare.budget: not a run of experiment=compare_methods")
    method = get_class(cfg.method._target_)
    verifier = OmegaConf.select(cfg, "method.verifier")
    held_out = [str(name) for name in OmegaConf.select(cfg, "compare.held_out") or []]
    saw = str(verifier) if verifier else SAW_STABILITY if method.sees == "stability" else "nothing"
    if saw in held_out:
        raise NoiseExpError(f"{run_dir}: method {method.name} saw {saw}, a held-out judge of the comparison")
    return ComparedRun(Path(run_dir), method.name, method.main_variant,
                       rung_budget(cfg.compare.budget), saw, held_out)


def compared_rows(runs: Sequence[ComparedRun]) -> pd.DataFrame:
    """The output variant's results.csv rows of every run, with method, budget and saw columns."""
    frames = []
    for run in runs:
        frame = read_results(run.path)
        frame = frame[frame["variant"] == run.variant].copy()
        frame.insert(0, "method", run.method)
        frame.insert(1, "budget", run.budget)
        frame.insert(2, "saw", run.saw)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    duplicated = rows.duplicated(["method", "budget", "dataset", "prompt_id"])
    if duplicated.any():
        raise NoiseExpError(f"two runs of method {rows[duplicated].iloc[0]['method']} at budget "
                            f"{rows[duplicated].iloc[0]['budget']} hold the same prompt")
    return rows


def compare_table(rows: pd.DataFrame, draws: int = 2000, tolerances: Mapping[str, float] | None = None,
                  lower: AbstractSet[str] = LEGACY_LOWER_IS_BETTER) -> pd.DataFrame:
    """Per (budget, method): n, mean NFEs and seconds, and per scorer the mean, its bootstrap interval and the
    win rate against the declared baseline (`compare_baseline`: random) at the same budget with its Wilson interval
    (a difference within `tie_tolerance_of(metric, tolerances)` is a tie, half a win; for a metric in `lower`, the
    runs' `lower_is_better`, lower wins)."""
    metrics = [m for m in metric_columns(rows) if m != "budget"]
    reference = compare_baseline()
    out = []
    for (budget, method), part in rows.groupby(["budget", "method"], sort=False):
        row: dict[str, Any] = {"budget": budget, "method": method, "saw": part["saw"].iloc[0], "n": len(part),
                               "nfe": float(part["unet_calls"].mean()), "time_s": float(part["time_s"].mean())}
        baseline = rows[(rows["budget"] == budget) & (rows["method"] == reference)]
        for metric in metrics:
            row[metric] = float(part[metric].mean())
            row[f"{metric}_low"], row[f"{metric}_high"] = bootstrap_interval(part[metric].to_numpy(), draws)
            pairs = part[["dataset", "prompt_id", metric]].merge(baseline[["dataset", "prompt_id", metric]],
                                                                 on=["dataset", "prompt_id"], suffixes=("", "_random"))
            difference = (pairs[metric] - pairs[f"{metric}_random"]).dropna().to_numpy()
            if metric in lower:
                difference = -difference
            counts = count_pairs(difference, tie_tolerance_of(metric, tolerances))
            row[f"{metric}_win"] = counts.win_rate if method != reference else math.nan
            low, high = counts.interval if method != reference else (math.nan, math.nan)
            row[f"{metric}_win_low"], row[f"{metric}_win_high"] = low, high
        out.append(row)
    table = pd.DataFrame(out)
    order = {cls.name: i for i, cls in enumerate(compare_classes())}
    table["_order"] = table["method"].map(lambda m: order.get(m, len(order)))
    return table.sort_values(["budget", "_order"]).drop(columns="_order").reset_index(drop=True)


def table_markdown(table: pd.DataFrame, held_out: Sequence[str]) -> str:
    """One line per (budget, method): `mean [low, high]` per scorer, its win rate vs the baseline, and what it saw."""
    metrics = [c for c in table.columns if f"{c}_low" in table.columns and not c.endswith("_win")]
    baseline = compare_baseline()
    shown = pd.DataFrame({"budget (generations)": table["budget"], "method": table["method"], "saw": table["saw"],
                          "n": table["n"], "NFEs": table["nfe"].round(1), "seconds": table["time_s"].round(2)})
    for metric in metrics:
        label = METRIC_LABELS.get(metric, metric) + (" (held out)" if metric in held_out else "")
        shown[label] = [_cell(r[metric], r[f"{metric}_low"], r[f"{metric}_high"], seen=r["saw"] == metric)
                        for _, r in table.iterrows()]
        shown[f"{label}: wins vs {baseline}"] = [_cell(r[f"{metric}_win"], r[f"{metric}_win_low"], r[f"{metric}_win_high"])
                                             for _, r in table.iterrows()]
    return to_markdown(shown, digits=1)


def _cell(value: float, low: float, high: float, seen: bool = False) -> str:
    if math.isnan(value):
        return "—"
    text = f"{value:.3f} [{low:.3f}, {high:.3f}]" if not math.isnan(low) else f"{value:.3f}"
    return f"{text} (seen)" if seen else text


def quality_plot(table: pd.DataFrame, path: Path, held_out: Sequence[str]) -> Path:
    """One panel per scorer: each method's mean (95% bootstrap interval) against its mean NFEs, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    metrics = [c for c in table.columns if f"{c}_low" in table.columns and not c.endswith("_win")]
    figure, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(4.6 * len(metrics), 3.6))
    for axis, metric in zip(axes[0], metrics):
        for method, part in table.groupby("method", sort=False):
            part = part.sort_values("nfe")
            error = [part[metric] - part[f"{metric}_low"], part[f"{metric}_high"] - part[metric]]
            axis.errorbar(part["nfe"], part[metric], yerr=np.nan_to_num(np.array(error, dtype=float)), marker="o",
                          capsize=3, linewidth=1, label=f"{method} (saw {part['saw'].iloc[0]})")
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("NFEs per prompt (network passes, CFG counted)", fontsize=7)
        title = METRIC_LABELS.get(metric, metric) + (" — held-out judge" if metric in held_out else "")
        axis.set_title(title, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
    return save_figure(figure, path)


@dataclass
class CompareResult:
    table: pd.DataFrame
    markdown: str
    files: dict[str, Path]


def write_compare(folder: Path, out_dir: Path | None = None, draws: int = 2000) -> CompareResult:
    """compare.csv, compare.md and quality_vs_nfe.png of the sweep in `folder` (default out: <folder>/compare)."""
    runs = [read_compared_run(run) for run in find_runs(Path(folder))]
    held_out = sorted({name for run in runs for name in run.held_out})
    tolerances = tie_tolerances([run.path for run in runs])
    table = compare_table(compared_rows(runs), draws, tolerances, lower_is_better([run.path for run in runs]))
    out_dir = Path(out_dir) if out_dir else Path(folder) / "compare"
    metrics = [c for c in table.columns if f"{c}_win" in table.columns]
    markdown = ties_rule(tolerances, metrics) + "\n\n" + table_markdown(table, held_out)
    files = {"csv": out_dir / "compare.csv", "md": out_dir / "compare.md"}
    atomic_write_bytes(files["csv"], table.to_csv(index=False).encode("utf-8"))
    atomic_write_bytes(files["md"], markdown.encode("utf-8"))
    files["png"] = quality_plot(table, out_dir / "quality_vs_nfe.png", held_out)
    return CompareResult(table, markdown, files)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m noise_exp.report.compare", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder, e.g. multirun/compare_methods")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <folder>/compare)")
    args = parser.parse_args(argv)
    result = write_compare(args.folder, args.out)
    print(result.markdown + f"\ntable: {result.files['md']}\nplot: {result.files['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
