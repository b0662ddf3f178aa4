"""Algorithm 1: noise selection by inversion stability."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from noise_exp.methods.roundtrip import RoundTripFn
from noise_exp.similarity import SimilarityFn, stability


@dataclass
class Candidate:
    """One kept noise with its seed, stability and the clean latents it denoises to."""

    seed: int
    stability: float
    noise: torch.Tensor
    latents: torch.Tensor


@dataclass
class SelectionResult:
    seeds: list[int]
    scores: torch.Tensor  # stability of every candidate, float32, in seed order
    stable: Candidate  # argmax
    unstable: Candidate  # argmin


def select_noise(
    seeds: Sequence[int],
    draw_noise: Callable[[Sequence[int]], torch.Tensor],
    roundtrip: RoundTripFn,
    batch_size: int = 1,
    similarity: SimilarityFn = stability,
    on_batch: Callable[[int], None] | None = None,
    on_candidate: Callable[[int, float], None] | None = None,
) -> SelectionResult:
    """Algorithm 1: s(eps_i) = cos(eps_i, F(eps_i)) for seeds i; keep the argmax (and the argmin).

    Candidates go through `batch_size` at a time; only the current best and worst are kept in memory.
    `on_candidate(seed, s)` hears each candidate's stability as soon as its batch is scored.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("select_noise needs at least one seed")
    scores: list[torch.Tensor] = []
    stable = unstable = None
    for start in range(0, len(seeds), max(1, batch_size)):
        batch_seeds = seeds[start : start + batch_size]
        noise = draw_noise(batch_seeds)  # Sampling a Gaussian noise eps_i
        latents, inverted = roundtrip(noise, batch_seeds)  # x0 = M(eps_i, c); eps'_i = Inversion(x0, c)
        batch_scores = similarity(noise, inverted).float().cpu()  # s(eps_i) = cos(eps_i, eps'_i)
        scores.append(batch_scores)
        hi, lo = int(batch_scores.argmax()), int(batch_scores.argmin())
        if stable is None or batch_scores[hi] > stable.stability:
            stable = Candidate(batch_seeds[hi], float(batch_scores[hi]), noise[hi].detach().clone(), latents[hi].detach().clone())
        if unstable is None or batch_scores[lo] < unstable.stability:
            unstable = Candidate(batch_seeds[lo], float(batch_scores[lo]), noise[lo].detach().clone(), latents[lo].detach().clone())
        if on_candidate is not None:
            for seed, score in zip(batch_seeds, batch_scores.tolist()):
                on_candidate(seed, score)
        if on_batch is not None:
            on_batch(len(batch_seeds))
    return SelectionResult(seeds=seeds, scores=torch.cat(scores), stable=stable, unstable=unstable)
