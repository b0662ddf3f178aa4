"""Algorithm 2: noise optimization by gradient descent on J(eps) = 1 - cos(eps, eps')."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods.roundtrip import RoundTripFn
from noise_exp.stability import SimilarityFn, stability


OPTIMIZERS = ("sgd", "adam")  # method.optimizer choices


@dataclass(frozen=True)
class OptimizationConfig:
    steps: int = 100  # n
    lr: float = 100.0  # eta
    momentum: float = 0.5  # beta
    lr_schedule: str = "cosine"  # cosine | constant
    optimizer: str = "sgd"  # sgd (the paper) | adam
    keep_best: bool = False  # return the most stable iterate instead of the last one
    early_stop_tol: float | None = None  # stop once 1 - s < tol for every sample


@dataclass
class TraceRow:
    step: int
    stability: list[float]  # one per sample in the batch
    lr: float


@dataclass
class OptimizationResult:
    original_noise: torch.Tensor
    original_latents: torch.Tensor
    original_stability: torch.Tensor
    optimized_noise: torch.Tensor
    optimized_latents: torch.Tensor
    optimized_stability: torch.Tensor
    norm_ratio: torch.Tensor  # |eps*| / |eps| per sample
    trace: list[TraceRow] = field(default_factory=list)
    steps_run: int = 0


def learning_rate(step: int, config: OptimizationConfig) -> float:
    """eta_i: cosine annealing from lr to 0 over n steps (as torch's CosineAnnealingLR), or constant."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
    raise NoiseExpError(f"unknown method.lr_schedule {config.lr_schedule!r}; choose cosine or constant")


ADAM_EPS = 1e-8


def make_optimizer(params: list[torch.Tensor], config: OptimizationConfig) -> torch.optim.Optimizer:
    """SGD with heavy-ball momentum m_i = beta m_{i-1} + grad, eps -= eta m_i (Alg. 2 lines 8-9), or Adam.

    Each tensor gets its own parameter group, so that each sample can have its own Adam step size.
    """
    groups = [{"params": [param]} for param in params]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, dampening=0.0)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=(config.momentum, 0.999), eps=ADAM_EPS)
    raise NoiseExpError(f"unknown method.optimizer {config.optimizer!r}; choose sgd or adam")


def adam_lr_factor(first_grad: torch.Tensor, adam_eps: float = ADAM_EPS) -> float:
    """k = |g0| / |g0 / (|g0| + e)| (~ |g0|/sqrt(d)): Adam's first step eta k g0/(|g0| + e) is as long as SGD's eta |g0|."""
    grad = first_grad.detach().double()
    adam_step = (grad / (grad.abs() + adam_eps)).norm()
    return float(grad.norm() / adam_step) if adam_step > 0 else 0.0


def norm_ratio(optimized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """|eps*| / |eps| per sample (dim 0 is the batch)."""
    return optimized.flatten(1).norm(dim=1) / original.flatten(1).norm(dim=1)


def optimize_noise(
    noise: torch.Tensor,
    seeds: Sequence[int],
    roundtrip: RoundTripFn,
    config: OptimizationConfig,
    similarity: SimilarityFn = stability,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> OptimizationResult:
    """Algorithm 2 on a batch of noises (each sample optimized independently).

    Each step recomputes eps' = F(eps) without gradient (eps' and the model are constants) and takes a
    gradient step on J(eps) = 1 - cos(eps, eps'). Adam's lr is in SGD's terms: each sample's Adam step
    size is lr times `adam_lr_factor` of its first gradient. The trace holds the stability of the iterate
    each step was computed at, and a last row for the returned noise; its lr column is the SGD-terms lr.
    """
    if config.steps < 0:
        raise NoiseExpError(f"method.steps must be >= 0, got {config.steps}")
    samples = [sample.detach().clone().to(torch.float32).requires_grad_(True) for sample in noise]
    optimizer = make_optimizer(samples, config)
    lr_factors: list[float] | None = [1.0] * len(samples) if config.optimizer == "sgd" else None
    trace: list[TraceRow] = []
    best = None  # (noise, latents, stability) of the most stable iterate per sample
    original = None
    steps_run = 0
    for step in range(config.steps):
        lr = learning_rate(step, config)
        eps = torch.stack(samples)
        latents, inverted = roundtrip(eps.detach(), seeds)  # x0 = M(eps, c); eps' = Inversion(x0, c)
        score = similarity(eps, inverted.detach())
        loss = (1.0 - score).sum()  # J(eps) = 1 - cos(eps, eps'), summed over independent samples
        detached = score.detach().float().cpu()
        trace.append(TraceRow(step, detached.tolist(), lr))
        if original is None:
            original = (eps.detach().clone(), latents.detach().clone(), detached.clone())
        best = _keep_best(best, eps.detach(), latents.detach(), detached) if config.keep_best else None
        if on_step is not None:
            on_step(step, detached)
        if config.early_stop_tol is not None and bool((1.0 - detached < config.early_stop_tol).all()):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if lr_factors is None:
            lr_factors = [adam_lr_factor(sample.grad) for sample in samples]
        for group, factor in zip(optimizer.param_groups, lr_factors):
            group["lr"] = lr * factor
        optimizer.step()
        steps_run = step + 1
    eps = torch.stack(samples)
    latents, inverted = roundtrip(eps.detach(), seeds)
    final_score = similarity(eps.detach(), inverted).float().cpu()
    trace.append(TraceRow(steps_run, final_score.tolist(), learning_rate(steps_run, config) if config.steps else config.lr))
    if original is None:
        original = (eps.detach().clone(), latents.detach().clone(), final_score.clone())
    final = (eps.detach().clone(), latents.detach().clone(), final_score)
    if config.keep_best:
        final = _keep_best(best, *final)
    return OptimizationResult(*original, *final, norm_ratio=norm_ratio(final[0], original[0]).cpu(), trace=trace,
                              steps_run=steps_run)


def _keep_best(best, noise: torch.Tensor, latents: torch.Tensor, score: torch.Tensor):
    if best is None:
        return noise.clone(), latents.clone(), score.clone()
    better = score > best[2]
    mask = better.view(-1, *([1] * (noise.dim() - 1))).to(noise.device)
    return (torch.where(mask, noise, best[0]), torch.where(mask, latents, best[1]), torch.where(better, score, best[2]))
