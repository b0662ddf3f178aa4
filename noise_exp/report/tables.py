"""Numbers of the report: per-variant means (Tables 1-2) and winning rates with 95% Wilson intervals (Figs 3, 5),
one row per setting of a sweep (its swept result keys as columns, `noise_exp.report.sweep`), dataset and variant."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from noise_exp.candidates.rules import rule_comparisons
from noise_exp.errors import NoiseExpError
from noise_exp.methods.declaration import Declaration
from noise_exp.methods.registry import declared_pairs, known_variants, paper_classes, variant_labels
from noise_exp.report.sweep import SweepSettings, check_unique_prompts, natural_key, sweep_settings
from noise_exp.rundir.metrics import runs_directions
from noise_exp.rundir.results import read_results

# Variant names, labels, order and comparisons ("A vs B": the share of prompts on which A beats B,
# docs/CONVENTIONS.md) come from the methods' declarations (noise_exp.methods.declaration).
# A candidate-bank query (`python -m noise_exp.bank select`) declares its rules' variants and comparisons in its
# method.json (noise_exp.bank.queries.rule_declaration); rule_comparisons gives the same comparisons to a query
# folder written before method.json existed.
# The paper's four metrics, in its column order; "Average" is their mean (Tables 1 and 2).
PAPER_METRICS = ("hpsv2", "aes", "pickscore", "imagereward")
METRIC_LABELS = {"hpsv2": "HPS v2", "aes": "AES", "pickscore": "PickScore", "imagereward": "ImageReward",
                 "lpips": "LPIPS", "lpips_vgg": "LPIPS (VGG)", "ssim": "SSIM", "clip_s": "CLIP-S",
                 "stability": "Stability"}
# Inversion stability s(eps) (eq. 3) is in every results.csv: a column of every means table and a winning-rate
# metric of every report, whether or not evaluators ran.
STABILITY = "stability"
NFE = "unet_calls"  # the NFEs that produced a row: network passes per sample, CFG passes included
# Which way a metric is better is recorded by the run folder when it is scored (metrics.json, from the evaluator's
# `higher_is_better`) and read by `lower_is_better`. The legacy fallback, only for folders scored before
# metrics.json existed: these two lower, every other metric higher.
LEGACY_LOWER_IS_BETTER = frozenset({"lpips", "lpips_vgg"})
BOOKKEEPING = frozenset({"dataset", "prompt_id", "prompt", "variant", "seed", "stability", "image", "noise",
                         "time_s", "unet_calls", "reference", "run", "norm_ratio", "nfe", "peak_memory_mb"})
RATE_COLUMNS = ["dataset", "a", "b", "metric", "n", "wins", "ties", "losses", "win_rate", "ci_low", "ci_high",
                "tie_tolerance"]
# Names a setting column may not take (results and table columns): such keys keep their dotted name.
RESERVED = BOOKKEEPING | set(RATE_COLUMNS) | set(METRIC_LABELS) | {"average", "comparison"}
Z_95 = 1.959963984540054


def load_runs(run_dirs: Sequence[Path], settings: SweepSettings | None = None) -> pd.DataFrame:
    """results.csv of every run, stacked, with a `run` column (pairs are only formed within one run) and, with
    `settings`, the runs' setting columns after it."""
    if not run_dirs:
        raise NoiseExpError("the report needs at least one run folder")
    frames = []
    for run_dir in run_dirs:
        frame = read_results(Path(run_dir))
        frame.insert(0, "run", str(Path(run_dir)))
        if settings is not None:
            settings.add_columns(frame, Path(run_dir))
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    if "dataset" not in merged.columns:
        merged["dataset"] = "all"
    merged["dataset"] = merged["dataset"].fillna("all").astype(str)
    return merged


def lower_is_better(run_dirs: Iterable[Path | str]) -> frozenset[str]:
    """The metrics the runs record as lower-is-better (metrics.json; two runs that disagree: NoiseExpError), plus
    LEGACY_LOWER_IS_BETTER's names that no run records (folders scored before metrics.json existed)."""
    directions = runs_directions(run_dirs)
    recorded_lower = {metric for metric, higher in directions.items() if not higher}
    return frozenset(recorded_lower | (LEGACY_LOWER_IS_BETTER - set(directions)))


@dataclass
class Sweep:
    """The stacked results of some runs; `columns` are the setting columns the tables split by (none when
    pooled), `settings` all of the runs' setting columns."""

    frame: pd.DataFrame
    settings: SweepSettings
    columns: tuple[str, ...]


def load_sweep(run_dirs: Sequence[Path], pool: bool = False) -> Sweep:
    """load_runs with the runs' setting columns; unless `pool`, each (setting, dataset, prompt_id, variant) must
    appear once (else NoiseExpError naming the runs)."""
    settings = sweep_settings(run_dirs, RESERVED)
    frame = load_runs(run_dirs, settings)
    if pool:
        return Sweep(frame, settings, ())
    check_unique_prompts(frame, settings.columns)
    return Sweep(frame, settings, settings.columns)


def groups(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """(values, rows) per distinct combination of `columns`, settings in natural order (`5` before `10`), other
    columns (dataset) in order of appearance; no columns: one group of all rows."""
    if not columns:
        return [({}, frame)]
    parts = [(dict(zip(columns, key)), part) for key, part in frame.groupby(list(columns), sort=False, dropna=False)]
    parts.sort(key=lambda item: tuple(natural_key(item[0][c]) for c in columns if c != "dataset"))
    return parts


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Scorer columns: the paper's four first, then any other numeric non-bookkeeping column."""
    numeric = [c for c in frame.columns if c not in BOOKKEEPING and pd.api.types.is_numeric_dtype(frame[c])]
    return [m for m in PAPER_METRICS if m in numeric] + sorted(m for m in numeric if m not in PAPER_METRICS)


def measured_columns(frame: pd.DataFrame) -> list[str]:
    """What the tables report: the scorer columns, then `stability` (in every results.csv)."""
    return metric_columns(frame) + ([STABILITY] if STABILITY in frame.columns else [])


def variant_order(declarations: Sequence[Declaration | None] = (None,)) -> list[str]:
    """The report's variant order: the registry's order over the variants the runs declare (a run that records no
    method, e.g. a bank query's folder, is read as the paper's methods'), then names only the runs declare."""
    paper = [spec.name for cls in paper_classes() for spec in cls.variants]
    named = {name for d in declarations for name in (d.names if d else paper)}
    unregistered = [name for d in declarations if d for name in d.names]
    return list(dict.fromkeys([*(v for v in known_variants() if v in named), *unregistered]))


def _variants(frame: pd.DataFrame, order: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(frame["variant"].astype(str)))
    return [v for v in order if v in present] + [v for v in present if v not in order]


def mean_table(frame: pd.DataFrame, settings: Sequence[str] = (), order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (setting columns..., dataset, variant in `order` (default `variant_order()`), then as they
    appear): the mean of each metric over prompts, `average` of the paper's four metrics when all four are present
    (the paper's Average column), and mean `stability`."""
    metrics, measured = metric_columns(frame), measured_columns(frame)
    order = variant_order() if order is None else order
    rows = []
    for values, subset in groups(frame, [*settings, "dataset"]):
        for variant in _variants(subset, order):
            part = subset[subset["variant"] == variant]
            row = {**values, "variant": variant, "n": int(len(part))}
            row.update({metric: float(part[metric].mean()) for metric in measured})
            rows.append(row)
    table = pd.DataFrame(rows, columns=[*settings, "dataset", "variant", "n", *measured])
    if all(metric in metrics for metric in PAPER_METRICS):
        table.insert(len(settings) + 3 + len(metrics), "average", table[list(PAPER_METRICS)].mean(axis=1))
    return table


def comparisons_for(variants: Sequence[str], declarations: Sequence[Declaration | None] = ()) -> list[tuple[str, str]]:
    """The declared comparisons, then (for a bank query's folder without method.json) those of its rules among
    `variants`: stable and each best_/oracle_ pick vs random, and each best_/oracle_ pick vs stable."""
    declared = declared_pairs(declarations)
    if declarations and all(declarations):
        return declared
    return [*declared, *(pair for pair in rule_comparisons(variants) if pair not in declared)]


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion (ties counted as half a success)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # clamp to [0, 1] and around p: rounding can put a bound a hair on the wrong side of p (10/10 -> 0.99999...)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def sign_test_p(wins: int, losses: int) -> float:
    """p = min(1, 2 sum_{i <= min(w, l)} C(w + l, i) / 2^(w + l)): exact two-sided sign test, ties dropped (n = 0: 1)."""
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def paired_scores(frame: pd.DataFrame, a: str, b: str, metric: str) -> pd.DataFrame:
    """Columns a, b: the metric of both variants for each (run, dataset, prompt_id) that has both."""
    keys = ["run", "dataset", "prompt_id"]
    left = frame[frame["variant"] == a][keys + [metric]].dropna(subset=[metric])
    right = frame[frame["variant"] == b][keys + [metric]].dropna(subset=[metric])
    for name, side in ((a, left), (b, right)):
        if side.duplicated(keys).any():
            raise NoiseExpError(f"variant {name} appears twice for one prompt_id in one run")
    return left.merge(right, on=keys, suffixes=("_a", "_b")).rename(columns={f"{metric}_a": "a", f"{metric}_b": "b"})


# A float32 scorer's result moves by ~1e-7 with its batch (the same image scored alone or in a batch of 4): no
# tolerance is below this floor, so that the same image is always a tie.
FLOAT_NOISE_TIE = 1e-6


def tie_tolerance_of(metric: str, tolerances: Mapping[str, float] | None = None) -> float:
    """The metric's tie tolerance: `report.tie_tolerance` (0 for metrics not listed), at least FLOAT_NOISE_TIE."""
    return max(float((tolerances or {}).get(metric, 0.0)), FLOAT_NOISE_TIE)


def is_tie(difference: np.ndarray, tolerance: float) -> np.ndarray:
    """|A - B| <= tolerance: a difference the metric cannot tell from none."""
    return np.abs(difference) <= tolerance


@dataclass(frozen=True)
class PairCounts:
    """Paired A - B differences (higher is better) counted: A wins, ties, B wins."""

    wins: int
    ties: int
    losses: int

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def win_rate(self) -> float:
        """(wins + ties / 2) / n; NaN without pairs."""
        return (self.wins + 0.5 * self.ties) / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of the win rate (ties half)."""
        return wilson_interval(self.wins + 0.5 * self.ties, self.n)


def count_pairs(difference: np.ndarray, tolerance: float) -> PairCounts:
    """Wins, ties and losses of A over B from the paired differences A - B (higher is better): |A - B| <= tolerance
    is a tie; `tolerance` is the metric's `tie_tolerance`."""
    difference = np.asarray(difference, dtype=np.float64)
    tied = is_tie(difference, tolerance)
    wins, ties = int(((difference > 0) & ~tied).sum()), int(tied.sum())
    return PairCounts(wins, ties, len(difference) - wins - ties)


def ties_rule(tolerances: Mapping[str, float] | None, metrics: Sequence[str]) -> str:
    """The sentence a report prints above its win rates: which score differences among `metrics` are ties."""
    tolerant = [m for m in dict.fromkeys(metrics) if tie_tolerance_of(m, tolerances) > FLOAT_NOISE_TIE]
    listed = ", ".join(f"{METRIC_LABELS.get(m, m)} |A - B| <= {tie_tolerance_of(m, tolerances):g}"
                       for m in tolerant)
    rest = "other metrics" if tolerant else "all metrics"
    return (f"Ties (half a win): {listed + '; ' if listed else ''}{rest}: |A - B| <= {FLOAT_NOISE_TIE:g}, a float32 "
            f"scorer's batch noise (`report.tie_tolerance`, `--tie-tolerance METRIC=VALUE`).")


def winning_rates(frame: pd.DataFrame, comparisons: Sequence[tuple[str, str]] | None = None,
                  settings: Sequence[str] = (), tie_tolerance: Mapping[str, float] | None = None,
                  lower: AbstractSet[str] | None = None) -> pd.DataFrame:
    """Per (setting columns..., dataset), comparison (default: the methods' declared ones) and metric (the
    evaluators', then `stability`): the share of prompts on which A beats B (ties half; for a metric in `lower`
    lower wins; default: `lower_is_better` of the runs in the frame's `run` column), with a 95% Wilson interval.
    A pair whose scores differ by at most `tie_tolerance_of(metric, tie_tolerance)` is a tie."""
    comparisons = declared_pairs() if comparisons is None else comparisons
    if lower is None:
        lower = lower_is_better(frame["run"].unique() if "run" in frame.columns else ())
    rows = []
    tolerances = dict(tie_tolerance or {})
    metrics = measured_columns(frame)
    for values, subset in groups(frame, [*settings, "dataset"]):
        present = set(subset["variant"].astype(str))
        for a, b in comparisons:
            if a not in present or b not in present:
                continue
            for metric in metrics:
                pairs = paired_scores(subset, a, b, metric)
                difference = (pairs["a"] - pairs["b"]).to_numpy()
                if metric in lower:
                    difference = -difference
                tolerance = tie_tolerance_of(metric, tolerances)
                counts = count_pairs(difference, tolerance)
                low, high = counts.interval
                rows.append({**values, "a": a, "b": b, "metric": metric, "n": counts.n, "wins": counts.wins,
                             "ties": counts.ties, "losses": counts.losses, "win_rate": counts.win_rate,
                             "ci_low": low, "ci_high": high, "tie_tolerance": tolerance})
    return pd.DataFrame(rows, columns=[*settings, *RATE_COLUMNS])


def labels_for(declarations: Sequence[Declaration | None] = ()) -> dict[str, str]:
    """variant -> row label: the registered methods' labels, then those only the runs declare."""
    declared = {spec.name: spec.label for d in declarations if d for spec in d.variants}
    return {**declared, **variant_labels()}


def paper_layout(means: pd.DataFrame, settings: Sequence[str] = (), labels: Mapping[str, str] | None = None,
                 lower: AbstractSet[str] = LEGACY_LOWER_IS_BETTER) -> pd.DataFrame:
    """The means in the paper's layout, after the setting columns (Noise: the declared label, `labels_for`; a metric
    in `lower`, the runs' `lower_is_better`, marked ↓): Dataset | Noise | HPS v2 | AES | PickScore | ImageReward |
    Average | Stability."""
    labels = labels_for() if labels is None else labels
    measured = [c for c in means.columns if c not in {*settings, "dataset", "variant", "n"}]
    table = means[list(settings)].copy()
    table["Dataset"] = means["dataset"].to_numpy()
    table["Noise"] = [labels.get(v, v) for v in means["variant"]]
    for metric in measured:
        label = "Average" if metric == "average" else METRIC_LABELS.get(metric, metric)
        if metric in lower:
            label += " ↓"
        table[label] = means[metric].to_numpy()
    return table


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table (no `tabulate` dependency)."""
    def cell(value):
        if isinstance(value, (float, np.floating)):
            return "nan" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "|".join("---" if not pd.api.types.is_numeric_dtype(table[c]) else "---:" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
