"""Algorithm 2: noise optimization by gradient descent on J(eps) = 1 - cos(eps, eps')."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods.roundtrip import RoundTripFn
from noise_exp.similarity import SimilarityFn, stability


OPTIMIZERS = ("sgd", "adam", "nesterov", "anderson")  # method.optimizer choices
PAPER_LR, PAPER_STEPS, PAPER_DIM = 100.0, 100, 4 * 128 * 128  # Table 2: lr 100 over 100 steps on SDXL's latents


def paper_equivalent_lr(dim: int, steps: int = PAPER_STEPS) -> float:
    """lr = 100 (d / (4 128 128)) (100 / n): the paper's step relative to |eps| (lr sin/d), and its total over n steps."""
    return PAPER_LR * (dim / PAPER_DIM) * (PAPER_STEPS / steps)


@dataclass(frozen=True)
class OptimizationConfig:
    steps: int = 100  # n
    lr: float = 100.0  # eta
    momentum: float = 0.5  # beta
    lr_schedule: str = "cosine"  # cosine | constant
    optimizer: str = "sgd"  # sgd (the paper) | adam | nesterov | anderson
    anderson_memory: int = 5  # m: past iterates the Anderson step combines (0: plain gradient descent)
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
ANDERSON_REGULARIZATION = 1e-10  # Tikhonov weight of the Anderson least squares, relative to |dR|_F^2


def anderson_step(iterates: torch.Tensor, residuals: torch.Tensor, mixing: float,
                  regularization: float = ANDERSON_REGULARIZATION) -> torch.Tensor:
    """x_{k+1} - x_k = b r_k - (dX + b dR) g, g = argmin |r_k - dR g|^2 + l |g|^2 (type-II Anderson, rows = history)."""
    step = mixing * residuals[-1]
    if len(iterates) < 2:
        return step
    d_iterates = (iterates[1:] - iterates[:-1]).T  # dX: [d, m], column j = x_{j+1} - x_j
    d_residuals = (residuals[1:] - residuals[:-1]).T  # dR: [d, m]
    gram = d_residuals.T @ d_residuals
    damping = regularization * float(gram.diagonal().sum()) + torch.finfo(gram.dtype).tiny
    gamma = torch.linalg.solve(gram + damping * torch.eye(len(gram), dtype=gram.dtype), d_residuals.T @ residuals[-1])
    return step - (d_iterates + mixing * d_residuals) @ gamma


class AndersonAcceleration(torch.optim.Optimizer):
    """Anderson acceleration (memory m) of the fixed-point map G(eps) = eps - eta grad J(eps), whose fixed points are
    the noises with F(eps) parallel to eps (s = 1): the residual r = -grad J and the mixing b = eta (SGD's lr); m = 0
    is gradient descent without momentum. Each iterate is rescaled to the starting noise's norm: unprojected, the
    secant step inflates the noise 30-60x, which raises s and ruins the image (docs/speed_study.md). Each parameter
    (one sample) keeps its own history."""

    def __init__(self, params: list[dict], lr: float, memory: int) -> None:
        super().__init__(params, {"lr": lr})
        self.memory = memory

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state[param]
                radius = state.setdefault("radius", param.detach().norm())
                history = state.setdefault("history", [])  # (x_j, r_j), oldest first
                history.append((param.detach().flatten().double().clone(), -param.grad.detach().flatten().double()))
                del history[:-(self.memory + 1)]
                iterates, residuals = (torch.stack(column) for column in zip(*history))
                param.add_(anderson_step(iterates, residuals, group["lr"]).view_as(param).to(param.dtype))
                param.mul_(radius / param.norm())


def make_optimizer(params: list[torch.Tensor], config: OptimizationConfig) -> torch.optim.Optimizer:
    """SGD with heavy-ball momentum m_i = beta m_{i-1} + grad, eps -= eta m_i (Alg. 2 lines 8-9), its Nesterov form
    eps -= eta (grad + beta m_i), Adam, or Anderson acceleration (`AndersonAcceleration`).

    Each tensor gets its own parameter group, so that each sample can have its own Adam step size.
    """
    groups = [{"params": [param]} for param in params]
    if config.optimizer in ("sgd", "nesterov"):
        nesterov = config.optimizer == "nesterov" and config.momentum > 0  # beta = 0: both are gradient descent
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, dampening=0.0, nesterov=nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=(config.momentum, 0.999), eps=ADAM_EPS)
    if config.optimizer == "anderson":
        if config.anderson_memory < 0:
            raise NoiseExpError(f"the Anderson memory must be >= 0, got {config.anderson_memory}")
        return AndersonAcceleration(groups, lr=config.lr, memory=config.anderson_memory)
    raise NoiseExpError(f"unknown method.optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


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
    size is lr times `adam_lr_factor` of its first gradient (Nesterov and Anderson take lr as SGD does). The trace
    holds the stability of the iterate each step was computed at, and a last row for the returned noise; its lr
    column is the SGD-terms lr. Every optimizer spends one round trip per step: trace row `step` cost step + 1.
    """
    if config.steps < 0:
        raise NoiseExpError(f"method.steps must be >= 0, got {config.steps}")
    samples = [sample.detach().clone().to(torch.float32).requires_grad_(True) for sample in noise]
    optimizer = make_optimizer(samples, config)
    lr_factors: list[float] | None = None if config.optimizer == "adam" else [1.0] * len(samples)
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
