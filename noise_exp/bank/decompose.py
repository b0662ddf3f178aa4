"""How much of s(eps) belongs to the seed alone: a two-way random-effects decomposition of a prompts x seeds table
of stabilities, with bootstrap intervals over prompts and seeds, and the agreement of prompts' seed rankings.

Model (one observation per cell): s[p, k] = mu + a_p + b_k + e_pk, a_p ~ (0, var_prompt), b_k ~ (0, var_seed), e_pk
~ (0, var_rest); e holds the prompt x seed interaction and any noise (they cannot be told apart with one s per cell).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from noise_exp.bank.stats import Interval


@dataclass(frozen=True)
class MeanSquares:
    prompt: float  # MS_P, (P - 1) degrees of freedom
    seed: float  # MS_S, (K - 1)
    rest: float  # MS_E, (P - 1)(K - 1)
    prompts: int
    seeds: int


@dataclass(frozen=True)
class VarianceShares:
    """Fractions of var(s) = var_seed + var_prompt + var_rest (each component truncated at 0)."""

    seed: float
    prompt: float
    rest: float


def anova_mean_squares(table: np.ndarray) -> MeanSquares:
    """MS_P = K sum_p (s_p. - s..)^2/(P-1), MS_S = P sum_k (s_.k - s..)^2/(K-1), MS_E = sum (s - s_p. - s_.k + s..)^2/((P-1)(K-1))."""
    table = np.asarray(table, dtype=np.float64)
    prompts, seeds = table.shape
    if prompts < 2 or seeds < 2:
        raise ValueError(f"a decomposition needs at least 2 prompts and 2 seeds, got {prompts} x {seeds}")
    grand = table.mean()
    prompt_means, seed_means = table.mean(axis=1), table.mean(axis=0)
    residual = table - prompt_means[:, None] - seed_means[None, :] + grand
    return MeanSquares(seeds * float(((prompt_means - grand) ** 2).sum()) / (prompts - 1),
                       prompts * float(((seed_means - grand) ** 2).sum()) / (seeds - 1),
                       float((residual ** 2).sum()) / ((prompts - 1) * (seeds - 1)), prompts, seeds)


def variance_components(ms: MeanSquares) -> tuple[float, float, float]:
    """(var_seed, var_prompt, var_rest) = ((MS_S - MS_E)/P, (MS_P - MS_E)/K, MS_E), negatives set to 0."""
    return (max(0.0, (ms.seed - ms.rest) / ms.prompts), max(0.0, (ms.prompt - ms.rest) / ms.seeds), max(0.0, ms.rest))


def variance_shares(table: np.ndarray) -> VarianceShares:
    """Each component over their sum (all 0 for a constant table)."""
    components = variance_components(anova_mean_squares(table))
    total = sum(components)
    return VarianceShares(*(c / total if total > 0 else 0.0 for c in components))


def mean_pairwise_spearman(table: np.ndarray, groups: Sequence[int] | None = None) -> float:
    """Mean over pairs of rows of Spearman's rho between their seed rankings (average ranks for ties); pairs of
    rows in the same `group` (a prompt drawn twice by a bootstrap) are left out."""
    ranks = np.apply_along_axis(rankdata, 1, np.asarray(table, dtype=np.float64))
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    norms[norms == 0] = np.inf  # a row of ties ranks nothing: rho 0 with every row
    rho = (centred @ centred.T) / np.outer(norms, norms)
    groups = np.arange(len(table)) if groups is None else np.asarray(groups)
    pairs = np.triu(groups[:, None] != groups[None, :], k=1)
    return float(rho[pairs].mean()) if pairs.any() else float("nan")


@dataclass
class Decomposition:
    """Shares of var(s) with percentile 95% intervals (bootstrap over prompts and seeds), and the mean pairwise
    Spearman of the prompts' seed rankings."""

    prompts: int
    seeds: int
    mean: float
    std: float
    seed: Interval
    prompt: Interval
    rest: Interval
    spearman: Interval
    draws: int


def decompose(table: np.ndarray, draws: int = 1000, seed: int = 0) -> Decomposition:
    """The shares and rank agreement of `table` [prompts, seeds]; each bootstrap draw resamples prompts and seeds
    independently with replacement and recomputes every statistic."""
    table = np.asarray(table, dtype=np.float64)
    rng = np.random.default_rng(seed)
    prompts, seeds = table.shape
    point = variance_shares(table)
    samples = np.empty((draws, 4))
    for draw in range(draws):
        rows, cols = rng.integers(prompts, size=prompts), rng.integers(seeds, size=seeds)
        resampled = table[np.ix_(rows, cols)]
        shares = variance_shares(resampled)
        samples[draw] = (shares.seed, shares.prompt, shares.rest, mean_pairwise_spearman(resampled, rows))
    low, high = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    values = (point.seed, point.prompt, point.rest, mean_pairwise_spearman(table))
    seed_i, prompt_i, rest_i, rho_i = (Interval(v, float(lo), float(hi)) for v, lo, hi in zip(values, low, high))
    return Decomposition(prompts, seeds, float(table.mean()), float(table.std()), seed_i, prompt_i, rest_i, rho_i,
                         draws)
