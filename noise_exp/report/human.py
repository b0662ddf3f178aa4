"""Human winning rates, confidence intervals and inter-annotator agreement from the votes database.

Definitions (also in docs/human_eval.md):
- A vote scores 1 for variant A of the comparison "A:B", 0 for B, 0.5 for "can't decide" (ties count half).
- A pair's score is the mean over the annotators who judged it; the winning rate of A is the mean over pairs,
  so every prompt weighs the same however many annotators saw it (with one vote per pair this is the share of
  votes).
- 95% CI: Wilson score interval on that rate with n = number of pairs (not votes: several annotators judging
  the same prompt are not independent samples of prompts). For a score in [0, 1] with mean p the variance is at
  most p(1-p), so applying the binomial interval to fractional scores is conservative.
- Agreement, over pairs judged by at least two annotators, with categories A / B / can't decide: percent
  agreement (the share of agreeing annotator pairs per item, averaged over items) and Fleiss' kappa in its form
  for a varying number of raters per item.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from noise_exp.methods.registry import declared_comparisons
from noise_exp.report.tables import wilson_interval
from noise_exp.rundir.votes import DB_NAME, TIE, VOTE_COLUMNS, read_votes

RATES_CSV = "human_winning_rates.csv"


@dataclass(frozen=True)
class ComparisonRate:
    """Human preference for `variant_a` over `variant_b`; agreement fields are NaN below two annotators."""

    comparison: str
    variant_a: str
    variant_b: str
    win_rate: float
    ci_low: float
    ci_high: float
    wins_a: int
    wins_b: int
    ties: int
    n_votes: int
    n_pairs: int
    n_annotators: int
    agreement_pairs: int
    percent_agreement: float
    fleiss_kappa: float


@dataclass(frozen=True)
class HumanEvalSummary:
    database: Path | None
    n_votes: int
    n_annotators: int
    annotators: tuple[str, ...]
    rates: tuple[ComparisonRate, ...] = field(default_factory=tuple)
    agreement_pairs: int = 0
    percent_agreement: float = math.nan
    fleiss_kappa: float = math.nan


def agreement(counts: np.ndarray) -> tuple[int, float, float]:
    """(items used, percent agreement, Fleiss' kappa) for an items x categories matrix of rating counts.

    Items with fewer than two ratings are left out. Kappa is NaN when chance agreement is 1 (every rating in
    one category), where it is undefined.
    """
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    if len(counts) == 0:
        return 0, math.nan, math.nan
    per_item = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    observed = float(per_item.mean())
    shares = counts.sum(axis=0) / raters.sum()
    chance = float((shares * shares).sum())
    kappa = math.nan if math.isclose(chance, 1.0) else (observed - chance) / (1.0 - chance)
    return len(counts), observed, kappa


def _category_counts(votes: pd.DataFrame) -> np.ndarray:
    category = np.where(votes["winner"] == votes["variant_a"], 0, np.where(votes["winner"] == TIE, 2, 1))
    table = pd.crosstab(votes["pair_id"].to_numpy(), category).reindex(columns=[0, 1, 2], fill_value=0)
    return table.to_numpy()


def _vote_scores(votes: pd.DataFrame) -> np.ndarray:
    return np.where(votes["winner"] == votes["variant_a"], 1.0, np.where(votes["winner"] == TIE, 0.5, 0.0))


def _rate(comparison: str, votes: pd.DataFrame) -> ComparisonRate:
    scores = pd.Series(_vote_scores(votes), index=votes.index)
    per_pair = scores.groupby(votes["pair_id"]).mean()
    win_rate = float(per_pair.mean())
    low, high = wilson_interval(float(per_pair.sum()), len(per_pair))
    items, percent, kappa = agreement(_category_counts(votes))
    return ComparisonRate(
        comparison=comparison,
        variant_a=str(votes["variant_a"].iloc[0]),
        variant_b=str(votes["variant_b"].iloc[0]),
        win_rate=win_rate,
        ci_low=low,
        ci_high=high,
        wins_a=int((scores == 1.0).sum()),
        wins_b=int((scores == 0.0).sum()),
        ties=int((scores == 0.5).sum()),
        n_votes=len(votes),
        n_pairs=len(per_pair),
        n_annotators=int(votes["annotator"].nunique()),
        agreement_pairs=items,
        percent_agreement=percent,
        fleiss_kappa=kappa,
    )


def summarize(votes: pd.DataFrame, database: Path | None = None) -> HumanEvalSummary:
    """Winning rates per comparison (the methods' declared comparisons first, then by name), counts, overall agreement."""
    if votes.empty:
        return HumanEvalSummary(database=database, n_votes=0, n_annotators=0, annotators=())
    conventional = {c.key: rank for rank, c in enumerate(declared_comparisons())}
    rates = tuple(
        sorted(
            (_rate(str(name), group) for name, group in votes.groupby("comparison")),
            key=lambda rate: (conventional.get(rate.comparison, len(conventional)), rate.comparison),
        )
    )
    items, percent, kappa = agreement(_category_counts(votes))
    annotators = tuple(sorted(votes["annotator"].unique()))
    return HumanEvalSummary(
        database=database,
        n_votes=len(votes),
        n_annotators=len(annotators),
        annotators=annotators,
        rates=rates,
        agreement_pairs=items,
        percent_agreement=percent,
        fleiss_kappa=kappa,
    )


def find_database(folder: Path) -> tuple[Path | None, str | None]:
    """The votes database for `folder` and the run prefix to keep (None = all votes).

    A folder that was served has its own database. A run folder inside a sweep that was served as a whole uses
    the sweep's database, keeping only the votes on its own pairs.
    """
    folder = Path(folder).resolve()
    if (folder / DB_NAME).is_file():
        return folder / DB_NAME, None
    for ancestor in folder.parents:
        if (ancestor / DB_NAME).is_file():
            return ancestor / DB_NAME, folder.relative_to(ancestor).as_posix()
    return None, None


def load_votes(folder: Path) -> tuple[pd.DataFrame, Path | None]:
    """Votes that concern `folder` (empty frame when nothing was collected) and the database they came from."""
    database, prefix = find_database(folder)
    rows = [asdict(vote) for vote in read_votes(database)] if database else []
    votes = pd.DataFrame(rows, columns=list(VOTE_COLUMNS))
    if prefix is not None and not votes.empty:
        votes = votes[(votes["run"] == prefix) | votes["run"].str.startswith(prefix + "/")]
    return votes.reset_index(drop=True), database


def human_winning_rates(folder: Path) -> HumanEvalSummary:
    votes, database = load_votes(folder)
    return summarize(votes, database)


def write_human_winning_rates_csv(folder: Path, out: Path | None = None) -> Path:
    """One row per comparison (columns: the fields of ComparisonRate) in `out`, default <folder>/human_winning_rates.csv."""
    summary = human_winning_rates(folder)
    out = Path(out) if out is not None else Path(folder) / RATES_CSV
    columns = list(ComparisonRate.__dataclass_fields__)
    pd.DataFrame([asdict(rate) for rate in summary.rates], columns=columns).to_csv(out, index=False)
    return out


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def human_report_markdown(folder: Path) -> str:
    """A "## Human preference" section for the report; says how to collect votes when there are none."""
    summary = human_winning_rates(folder)
    lines = ["## Human preference", ""]
    if summary.n_votes == 0:
        lines.append(
            f"No human votes for this folder yet. Collect them with `python -m noise_exp.human_eval serve {folder}`."
        )
        return "\n".join(lines) + "\n"
    lines += [
        f"{summary.n_votes} votes from {summary.n_annotators} annotator(s) on the paper's pairwise page "
        "(appendix A.3 criteria), left/right order randomised per annotator.",
        "",
        "| comparison | winning rate (A) | 95% CI | A wins | B wins | can't decide | votes | pairs | annotators |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rate in summary.rates:
        lines.append(
            f"| {rate.variant_a} vs {rate.variant_b} | {_pct(rate.win_rate)} | "
            f"[{_pct(rate.ci_low)}, {_pct(rate.ci_high)}] | {rate.wins_a} | {rate.wins_b} | {rate.ties} | "
            f"{rate.n_votes} | {rate.n_pairs} | {rate.n_annotators} |"
        )
    lines += [
        "",
        "Winning rate of A: votes for A per pair averaged over pairs, \"can't decide\" counting half. "
        "95% CI: Wilson score interval with n = pairs.",
    ]
    if summary.n_annotators >= 2:
        lines += [
            "",
            "Inter-annotator agreement on pairs judged by at least two annotators (categories: A, B, can't decide):",
            "",
            "| comparison | pairs | percent agreement | Fleiss' kappa |",
            "|---|---|---|---|",
        ]
        for rate in summary.rates:
            lines.append(
                f"| {rate.variant_a} vs {rate.variant_b} | {rate.agreement_pairs} | "
                f"{_pct(rate.percent_agreement)} | {_num(rate.fleiss_kappa)} |"
            )
        lines.append(
            f"| all | {summary.agreement_pairs} | {_pct(summary.percent_agreement)} | {_num(summary.fleiss_kappa)} |"
        )
    return "\n".join(lines) + "\n"
