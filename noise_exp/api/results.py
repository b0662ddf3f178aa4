"""What the library functions return: the chosen noise as the pipeline's `latents=`, and what choosing it cost."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch


@dataclass
class Choice:
    """`nx.select`: the most inversion-stable of the candidate seeds (Algorithm 1)."""

    latents: torch.Tensor  # pipe(prompt, latents=...) input: the seed's own draw, packed for FLUX, pipe device/dtype
    seed: int
    stability: float  # s(eps) = cos(eps, F(eps)) of the kept seed
    candidates: pd.DataFrame  # one row per seed: seed, stability (NaN where only the proxy scored it) [, proxy]
    nfe: int  # network passes spent choosing (CFG passes counted), summed over the candidates
    seconds: float  # wall time spent choosing (prompt encoding included)
    reused: int = 0  # candidates read from the bank instead of computed


@dataclass
class Optimized:
    """`nx.optimize`: Algorithm 2 from a seed's noise (or given latents)."""

    latents: torch.Tensor
    seed: int | None  # the seed it started from; None when it started from given latents
    stability: float  # s of the returned noise
    original_stability: float  # s of the noise it started from
    norm_ratio: float  # |eps*| / |eps|
    trace: pd.DataFrame  # step, stability, lr
    nfe: int
    seconds: float


@dataclass
class BestOfN:
    """`nx.best_of_n`: the candidate seed whose image the verifier scores highest (no inversion)."""

    latents: torch.Tensor
    seed: int
    score: float
    candidates: pd.DataFrame  # one row per seed: seed, score
    nfe: int
    seconds: float  # generation, decoding and scoring


@dataclass
class RewardOptimized:
    """`nx.reward_opt`: the noise after gradient ascent on a differentiable reward of the image (ReNO)."""

    latents: torch.Tensor
    seed: int | None
    reward: float  # of the returned noise (the best iterate unless keep_best=False)
    original_reward: float
    norm_ratio: float
    trace: pd.DataFrame = field(repr=False)  # step, reward, lr
    nfe: int = 0  # forward passes counted, plus the backward passes at 2 forward passes each (reward_opt_cost)
    seconds: float = 0.0
