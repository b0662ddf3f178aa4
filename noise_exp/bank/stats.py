"""Does s(eps) order a prompt's candidates as a quality score does? Rank correlations within each prompt, pooled
over prompts from within-prompt ranks, with percentile-bootstrap 95% intervals over prompts, and what keeping the
argmax of s gains over a random pick, in units of the prompt's spread of the score.

Pooled Spearman rho is the correlation of the within-prompt ranks (each prompt's ranks centred on their mean), so a
prompt never correlates with another; pooled Kendall tau is the mean of the prompts' tau-b weighted by their pairs.
With the same K for every prompt, pooled rho is the mean of the prompts' rho.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import kendalltau, rankdata


@dataclass
class PromptStats:
    """One prompt's K candidates: s (the similarity) against y (a score)."""

    n: int
    rho: float  # Spearman
    tau: float  # Kendall tau-b
    gain: float  # (y at argmax s - mean y) / std y: the argmax of s over a random pick (whose expectation is mean y)
    oracle_gain: float  # (max y - mean y) / std y: the best of the K over a random pick
    rank_cov: float  # sums of the centred ranks' products and squares, for pooling
    rank_var_s: float
    rank_var_y: float
    pairs: float


def prompt_stats(s: np.ndarray, y: np.ndarray) -> PromptStats:
    """Stats of one prompt; std is the sample std (ddof 1); a score with no spread gives NaN gains."""
    s, y = np.asarray(s, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if s.shape != y.shape or s.ndim != 1 or len(s) < 2:
        raise ValueError("prompt_stats needs two 1-D arrays of the same length >= 2")
    rank_s, rank_y = rankdata(s), rankdata(y)
    rank_s, rank_y = rank_s - rank_s.mean(), rank_y - rank_y.mean()
    cov, var_s, var_y = float(rank_s @ rank_y), float(rank_s @ rank_s), float(rank_y @ rank_y)
    rho = cov / np.sqrt(var_s * var_y) if var_s > 0 and var_y > 0 else np.nan
    tau = float(kendalltau(s, y).statistic) if var_s > 0 and var_y > 0 else np.nan
    spread = y.std(ddof=1)
    gain = (y[int(np.argmax(s))] - y.mean()) / spread if spread > 0 else np.nan
    oracle = (y.max() - y.mean()) / spread if spread > 0 else np.nan
    return PromptStats(len(s), float(rho), tau, float(gain), float(oracle), cov, var_s, var_y, len(s) * (len(s) - 1) / 2)


@dataclass
class Interval:
    estimate: float
    low: float
    high: float

    def __format__(self, spec: str) -> str:
        """`estimate [low, high]`, each formatted by `spec` (default `+.3f`)."""
        spec = spec or "+.3f"
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"

    def __str__(self) -> str:
        return format(self, "")


@dataclass
class PooledStats:
    """Over prompts: pooled rho and tau, mean gains and the oracle gap (oracle gain - gain), each with its 95%
    percentile-bootstrap interval over prompts; `share_positive` is the share of prompts with rho > 0."""

    prompts: int
    candidates: int
    rho: Interval
    tau: Interval
    gain: Interval
    oracle_gain: Interval
    oracle_gap: Interval
    share_positive: float


def pooled_stats(per_prompt: Sequence[PromptStats], draws: int = 2000, seed: int = 0) -> PooledStats:
    """Pool prompts and bootstrap them (resampled with replacement, `draws` times, seeded)."""
    if not per_prompt:
        raise ValueError("pooled_stats needs at least one prompt")
    count = len(per_prompt)
    weights = np.vstack([np.ones(count), np.random.default_rng(seed).multinomial(count, np.full(count, 1 / count),
                                                                                 size=draws)])
    column = {name: np.array([getattr(p, name) for p in per_prompt], dtype=np.float64)
              for name in ("rho", "tau", "gain", "oracle_gain", "rank_cov", "rank_var_s", "rank_var_y", "pairs")}

    def weighted_mean(values: np.ndarray, pair_weights: np.ndarray | None = None) -> np.ndarray:
        valid = ~np.isnan(values)
        w = weights[:, valid] * (1 if pair_weights is None else pair_weights[valid])
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ values[valid]) / w.sum(axis=1)

    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (weights @ column["rank_cov"]) / np.sqrt((weights @ column["rank_var_s"]) * (weights @ column["rank_var_y"]))
    gain, oracle = weighted_mean(column["gain"]), weighted_mean(column["oracle_gain"])
    both = ~np.isnan(column["gain"]) & ~np.isnan(column["oracle_gain"])
    gap = weighted_mean(np.where(both, column["oracle_gain"] - column["gain"], np.nan))

    def interval(values: np.ndarray) -> Interval:
        draws_ = values[1:][~np.isnan(values[1:])]
        if not len(draws_):
            return Interval(float(values[0]), np.nan, np.nan)
        low, high = np.percentile(draws_, [2.5, 97.5])
        return Interval(float(values[0]), float(low), float(high))

    return PooledStats(count, int(sum(p.n for p in per_prompt)), interval(rho),
                       interval(weighted_mean(column["tau"], column["pairs"])), interval(gain), interval(oracle),
                       interval(gap), float(np.mean(column["rho"] > 0)))
