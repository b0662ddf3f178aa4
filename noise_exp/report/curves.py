"""Curves of a sweep (the paper's Fig. 8: quality against T) and the optimization's stability trace.

For each numeric setting column of a sweep (`num_steps`, `lr`, `num_seeds`, `guidance_scale`, ...) the report draws
every measured metric's mean per variant and every comparison's winning rate against that key, with 95% intervals,
one line per variant or comparison and one panel column per (dataset, values of the other setting columns). Each
figure's data is written next to it as CSV.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from noise_exp.report.figures import save_figure
from noise_exp.report.sweep import natural_key, typed
from noise_exp.report.tables import METRIC_LABELS, Z_95, groups, measured_columns

CURVE_COLUMNS = ["panel", "series", "kind", "metric", "x", "value", "ci_low", "ci_high", "n"]
TRACE_COLUMNS = ["setting", "step", "n", "median", "q25", "q75", "min", "max"]


def mean_interval(values: np.ndarray, z: float = Z_95) -> tuple[float, float]:
    """mean -/+ z s / sqrt(n): the normal 95% interval of a mean (NaN with fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    half = z * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def numeric_settings(frame: pd.DataFrame, settings: Sequence[str]) -> list[str]:
    """The setting columns whose values are all numbers and take at least two values: the keys to draw curves over."""
    keys = []
    for column in settings:
        values = [typed(v) for v in frame[column].astype(str).unique()]
        if len(values) > 1 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            keys.append(column)
    return keys


def _panel(values: Mapping[str, object], key: str) -> str:
    """A panel's title: its dataset and the other setting columns' values (`digits, lr=0.1`)."""
    others = [f"{c}={v}" for c, v in values.items() if c not in (key, "dataset")]
    return ", ".join([str(values["dataset"]), *others])


def curve_data(frame: pd.DataFrame, rates: pd.DataFrame, key: str, settings: Sequence[str]) -> pd.DataFrame:
    """One row per (panel, series, metric, value of `key`): `kind` is `mean` (series = a variant; its 95% normal
    interval over prompts) or `winning_rate` (series = `A vs B`; its 95% Wilson interval from `rates`)."""
    others = [c for c in settings if c != key]
    rows = []
    for values, subset in groups(frame, [*settings, "dataset"]):
        panel, x = _panel(values, key), float(typed(str(values[key])))
        for variant, part in subset.groupby("variant", sort=False):
            for metric in measured_columns(frame):
                scores = part[metric].astype(float).to_numpy()
                low, high = mean_interval(scores)
                rows.append([panel, str(variant), "mean", metric, x, float(np.nanmean(scores)), low, high,
                             int((~np.isnan(scores)).sum())])
        match = np.ones(len(rates), dtype=bool)
        for column in [*others, key, "dataset"]:
            match &= rates[column].astype(str).to_numpy() == str(values[column])
        for rate in rates[match].itertuples(index=False):
            rows.append([panel, f"{rate.a} vs {rate.b}", "winning_rate", rate.metric, x, rate.win_rate, rate.ci_low,
                         rate.ci_high, rate.n])
    data = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return data.sort_values(["kind", "metric", "panel", "series", "x"], kind="stable").reset_index(drop=True)


def curve_figure(data: pd.DataFrame, key: str, path: Path) -> Path:
    """One column per metric; per panel of `curve_data` a row of means (a line per variant) and a row of winning
    rates (a line per comparison) against `key`, the swept values as ticks (log scale when they span more than a
    factor of 20)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(data["metric"]))
    panels = sorted(dict.fromkeys(data["panel"]), key=natural_key)
    kinds = [kind for kind in ("mean", "winning_rate") if (data["kind"] == kind).any()]
    rows = [(panel, kind) for panel in panels for kind in kinds]
    figure, axes = plt.subplots(len(rows), len(metrics), squeeze=False, sharex=True,
                                figsize=(3.3 * len(metrics) + 1.6, 2.4 * len(rows) + 0.7))
    ticks = sorted(set(data["x"]))
    log = ticks[0] > 0 and ticks[-1] / ticks[0] > 20
    for r, (panel, kind) in enumerate(rows):
        for c, metric in enumerate(metrics):
            axis = axes[r, c]
            part = data[(data["kind"] == kind) & (data["metric"] == metric) & (data["panel"] == panel)]
            for series, line in part.groupby("series", sort=False):
                axis.plot(line["x"], line["value"], marker="o", markersize=3, linewidth=1.2, label=series)
                if line["ci_low"].notna().any():
                    axis.fill_between(line["x"], line["ci_low"], line["ci_high"], alpha=0.15)
            if kind == "winning_rate":
                axis.axhline(0.5, color="grey", linestyle="--", linewidth=0.7)
                axis.set_ylim(-0.02, 1.02)
            label = METRIC_LABELS.get(metric, metric)
            axis.set_title(f"{label}: {'winning rate' if kind == 'winning_rate' else 'mean'}"
                           + (f" ({panel})" if len(panels) > 1 else ""), fontsize=8)
            if log:
                axis.set_xscale("log")
            axis.set_xticks(ticks, [f"{t:g}" for t in ticks])
            axis.tick_params(labelsize=7)
            if r == len(rows) - 1:
                axis.set_xlabel(key, fontsize=8)
        handles, labels = axes[r, 0].get_legend_handles_labels()
        axes[r, -1].legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5),
                           frameon=False)
    where = f"; {panels[0]}" if len(panels) == 1 and panels[0] else ""
    figure.suptitle(f"Scores and winning rates vs {key}{where}\n(bands: 95% normal interval of the mean; 95% Wilson "
                    f"interval of the winning rate)", fontsize=9)
    return save_figure(figure, path)


def trace_data(traces: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (setting, step): the median, quartiles and range of stability over the prompts of that setting's
    optimization_trace rows."""
    rows = []
    for setting, trace in traces.items():
        for step, part in trace.groupby("step", sort=True):
            values = part["stability"].astype(float).dropna().to_numpy()
            if len(values):
                q25, median, q75 = np.percentile(values, [25, 50, 75])
                rows.append([setting, int(step), len(values), median, q25, q75, values.min(), values.max()])
    return pd.DataFrame(rows, columns=TRACE_COLUMNS)


def trace_figure(data: pd.DataFrame, path: Path) -> Path:
    """Stability per optimization step: the median over prompts as a line, the quartiles as a band and the
    range as a lighter band, one line per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for setting, part in data.groupby("setting", sort=False):
        line, = axis.plot(part["step"], part["median"], linewidth=1.4, label=f"{setting} (median)")
        axis.fill_between(part["step"], part["q25"], part["q75"], color=line.get_color(), alpha=0.25)
        axis.fill_between(part["step"], part["min"], part["max"], color=line.get_color(), alpha=0.08)
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set_xlabel("optimization step", fontsize=8)
    axis.set_ylabel("stability s(ε)", fontsize=8)
    axis.set_title(f"Stability during optimization: median over prompts, quartiles and range "
                   f"(n = {int(data['n'].max())} prompts)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.legend(fontsize=6, loc="lower right")
    return save_figure(figure, path)
