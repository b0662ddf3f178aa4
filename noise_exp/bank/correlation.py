"""The correlation study of a candidate set: for each similarity (cosine = the paper's s(eps), pearson, neg_rmse)
and each evaluator score, per-prompt and pooled rank correlations with bootstrap intervals, the gain of the argmax of
s over a random pick and the oracle's; written as CSV, a Markdown table and a scatter plot."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from noise_exp.bank.queries import CandidateSet
from noise_exp.bank.stats import PooledStats, pooled_stats, prompt_stats
from noise_exp.candidates.rules import SIMILARITY_NAMES
from noise_exp.candidates.storage import SCORE_PREFIX, STABILITY_PREFIX
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes

TABLE_COLUMNS = ["similarity", "score", "prompts", "candidates", "rho", "rho_low", "rho_high", "tau", "tau_low",
                 "tau_high", "gain", "gain_low", "gain_high", "oracle_gain", "oracle_gain_low", "oracle_gain_high",
                 "oracle_gap", "oracle_gap_low", "oracle_gap_high", "share_positive"]


@dataclass
class CorrelationResult:
    table: pd.DataFrame  # one row per (similarity, score): TABLE_COLUMNS
    per_prompt: pd.DataFrame  # one row per (similarity, score, prompt)
    candidates: CandidateSet


def correlate(candidates: CandidateSet, scores: Sequence[str], similarities: Sequence[str] = SIMILARITY_NAMES,
              draws: int = 2000, seed: int = 0) -> CorrelationResult:
    unknown = [name for name in similarities if name not in SIMILARITY_NAMES]
    if unknown:
        raise NoiseExpError(f"unknown similarity {unknown[0]!r}; choose among {', '.join(SIMILARITY_NAMES)}")
    missing = [name for name in scores if name not in candidates.score_names]
    if missing:
        raise NoiseExpError(f"no {', '.join(missing)} scores among these candidates (scored: "
                            f"{', '.join(candidates.score_names) or 'none'}); run with method.score_candidates=true")
    rows, prompt_rows = [], []
    for similarity in similarities:
        for score in scores:
            per_prompt = []
            for prompt in candidates.prompts:
                frame = prompt.frame.dropna(subset=[f"{STABILITY_PREFIX}{similarity}", f"{SCORE_PREFIX}{score}"])
                if len(frame) < 2:
                    continue
                stats = prompt_stats(frame[f"{STABILITY_PREFIX}{similarity}"].to_numpy(),
                                     frame[f"{SCORE_PREFIX}{score}"].to_numpy())
                per_prompt.append(stats)
                prompt_rows.append({"similarity": similarity, "score": score, "prompt_id": prompt.prompt_id,
                                    "prompt": prompt.prompt, "n": stats.n, "rho": stats.rho, "tau": stats.tau,
                                    "gain": stats.gain, "oracle_gain": stats.oracle_gain})
            if not per_prompt:
                raise NoiseExpError(f"no prompt has two candidates with {score} scores")
            rows.append(_row(similarity, score, pooled_stats(per_prompt, draws, seed)))
    return CorrelationResult(pd.DataFrame(rows, columns=TABLE_COLUMNS), pd.DataFrame(prompt_rows), candidates)


def _row(similarity: str, score: str, pooled: PooledStats) -> dict:
    row = {"similarity": similarity, "score": score, "prompts": pooled.prompts, "candidates": pooled.candidates,
           "share_positive": pooled.share_positive}
    for name in ("rho", "tau", "gain", "oracle_gain", "oracle_gap"):
        interval = asdict(getattr(pooled, name))
        row.update({name: interval["estimate"], f"{name}_low": interval["low"], f"{name}_high": interval["high"]})
    return row


def markdown(result: CorrelationResult) -> str:
    """The pooled table: estimates with their 95% bootstrap intervals over prompts."""
    def cell(row: pd.Series, name: str) -> str:
        return f"{row[name]:+.3f} [{row[f'{name}_low']:+.3f}, {row[f'{name}_high']:+.3f}]"

    lines = ["| similarity | score | prompts | candidates | Spearman rho | Kendall tau | gain of argmax s over random (std) "
             "| oracle gain (std) | oracle gap (std) | prompts with rho > 0 |",
             "|---|---|---:|---:|---|---|---|---|---|---:|"]
    for _, row in result.table.iterrows():
        lines.append(f"| {row['similarity']} | {row['score']} | {row['prompts']} | {row['candidates']} | "
                     f"{cell(row, 'rho')} | {cell(row, 'tau')} | {cell(row, 'gain')} | {cell(row, 'oracle_gain')} | "
                     f"{cell(row, 'oracle_gap')} | {row['share_positive']:.2f} |")
    return "\n".join(lines) + "\n"


def scatter_plot(result: CorrelationResult, path: Path) -> Path:
    """One panel per (similarity, score): each candidate's s against its score, both standardised within its
    prompt (so prompts share axes), with the pooled rho in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from noise_exp.report.figures import save_figure

    similarities = list(dict.fromkeys(result.table["similarity"]))
    scores = list(dict.fromkeys(result.table["score"]))
    figure, axes = plt.subplots(len(similarities), len(scores), squeeze=False,
                                figsize=(3.6 * len(scores), 3.2 * len(similarities)))
    for i, similarity in enumerate(similarities):
        for j, score in enumerate(scores):
            xs, ys = [], []
            for prompt in result.candidates.prompts:
                frame = prompt.frame.dropna(subset=[f"{STABILITY_PREFIX}{similarity}", f"{SCORE_PREFIX}{score}"])
                xs.append(_standardised(frame[f"{STABILITY_PREFIX}{similarity}"].to_numpy(dtype=np.float64)))
                ys.append(_standardised(frame[f"{SCORE_PREFIX}{score}"].to_numpy(dtype=np.float64)))
            row = result.table[(result.table["similarity"] == similarity) & (result.table["score"] == score)].iloc[0]
            axis = axes[i, j]
            axis.scatter(np.concatenate(xs), np.concatenate(ys), s=3, alpha=0.25, color="#1f77b4", linewidths=0)
            axis.set_title(f"{score} vs {similarity}: rho {row['rho']:+.2f} [{row['rho_low']:+.2f}, "
                           f"{row['rho_high']:+.2f}]", fontsize=8)
            axis.set_xlabel(f"s ({similarity}), z within prompt", fontsize=7)
            axis.set_ylabel(f"{score}, z within prompt", fontsize=7)
            axis.tick_params(labelsize=6)
    return save_figure(figure, path, dpi=110)


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else values * 0


def write_correlation(result: CorrelationResult, out: Path) -> dict[str, Path]:
    out = Path(out)
    files = {"table_csv": out / "correlation.csv", "per_prompt_csv": out / "per_prompt.csv",
             "table_md": out / "correlation.md"}
    atomic_write_bytes(files["table_csv"], result.table.to_csv(index=False).encode("utf-8"))
    atomic_write_bytes(files["per_prompt_csv"], result.per_prompt.to_csv(index=False).encode("utf-8"))
    candidates = result.candidates
    header = (f"# Stability vs quality over stored candidates\n\nSource: `{candidates.source}` (bank "
              f"`{candidates.bank.path}`, scope `{candidates.scope.digest}`: {candidates.scope.describe()}).\n\n"
              f"Per prompt: Spearman rho and Kendall tau-b between s(eps) and the score over the prompt's candidates; "
              f"pooled from within-prompt ranks; 95% percentile-bootstrap intervals over prompts. Gain: the score of "
              f"the argmax-s candidate minus the prompt's mean score (a random pick's expectation), in units of the "
              f"prompt's std of the score; oracle: the best candidate's; gap = oracle - gain.\n\n")
    atomic_write_bytes(files["table_md"], (header + markdown(result)).encode("utf-8"))
    files["scatter_png"] = scatter_plot(result, out / "scatter.png")
    return files
