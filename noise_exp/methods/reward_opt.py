"""Reward-based noise optimization (ReNO, Eyring et al., NeurIPS 2024): gradient ascent on a differentiable reward
of the decoded image with respect to the initial noise, back-propagated through the sampler and the VAE decoder.

Each step: pixels = D(M(eps, c)); objective = R(pixels, c) - lambda * P(eps), P the chi-norm penalty (`norm_penalty`);
the gradient is clipped to norm `grad_clip` and taken by SGD with Nesterov momentum (ReNO's optimizer). The best
iterate by reward is returned (`keep_best`), as ReNO does. Compute, in NFEs (network passes per sample, CFG passes
included): each reward evaluation is one generation G; each gradient step adds the backward pass, which with one
checkpoint per sampler step recomputes the T forward passes (G, counted as they happen) and back-propagates them
(counted as 2G: a backward pass costs about two forward passes). n gradient steps cost (4n + 1) G.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods.best_of_n import NO_STABILITY, budget_count
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.differentiable import DifferentiableSampler, generation_nfe
from noise_exp.methods.declaration import Budget, Comparison, VariantSpec
from noise_exp.methods.method import ORIGINAL, Method, MethodOutput, Progress
from noise_exp.methods.optimization import norm_ratio
from noise_exp.methods.verifier import check_held_out, load_verifier
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.params import flag_param, integer_param, real_param

if TYPE_CHECKING:
    from noise_exp.evaluators.base import Evaluator

BACKWARD_COST = 2  # NFEs of back-propagating one network pass, in forward passes (the usual estimate)
STEP_COST = 2 + BACKWARD_COST  # generations per gradient step: forward, checkpoint recompute, backward


def norm_penalty(noise: torch.Tensor) -> torch.Tensor:
    """P(eps) = |eps|^2 / 2 - (d - 1) log|eps| = -log chi_d(|eps|) + const per sample: least at |eps| = sqrt(d - 1)."""
    flat = noise.flatten(1).to(torch.float32)
    radius = flat.norm(dim=1)
    return 0.5 * radius**2 - (flat.shape[1] - 1) * torch.log(radius)


def counted_nfe(forward: int, steps_run: int) -> tuple[float, int]:
    """(G, the run's NFEs) from the forward passes counted over n gradient steps: (2n + 1) G forward (the reward
    evaluations and the checkpoint recomputes), plus the n backward passes at BACKWARD_COST G each."""
    generation = forward / (2 * steps_run + 1)
    return generation, int(round(forward + BACKWARD_COST * generation * steps_run))


def reward_opt_cost(steps_run: int, generation: float) -> float:
    """NFEs of reward optimization: (STEP_COST n + 1) G for n gradient steps and generations of G NFEs."""
    return (STEP_COST * steps_run + 1) * generation


@dataclass(frozen=True)
class RewardOptConfig:
    steps: int = 50  # gradient steps at most (ReNO: 50)
    lr: float = 5.0  # ReNO's SGD learning rate
    momentum: float = 0.9
    grad_clip: float = 0.1  # max gradient norm (ReNO: 0.1)
    reg_weight: float = 0.01  # lambda of the norm penalty (ReNO: 0.01)
    keep_best: bool = True  # return the iterate with the highest reward (ReNO), else the last one
    early_stop_reward: float | None = None  # stop once every sample's reward reaches this
    patience: int | None = None  # stop after this many steps without a better reward


@dataclass
class RewardTraceRow:
    step: int
    reward: list[float]  # per sample, at the iterate of this step
    lr: float


@dataclass
class RewardOptResult:
    original_noise: torch.Tensor
    original_latents: torch.Tensor
    original_reward: torch.Tensor
    optimized_noise: torch.Tensor
    optimized_latents: torch.Tensor
    optimized_reward: torch.Tensor
    norm_ratio: torch.Tensor
    trace: list[RewardTraceRow] = field(default_factory=list)
    steps_run: int = 0  # gradient steps taken


RewardFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # eps -> (reward [B], latents [B, ...])


def optimize_reward(noise: torch.Tensor, reward_fn: RewardFn, config: RewardOptConfig,
                    on_step: Callable[[int, torch.Tensor], None] | None = None) -> RewardOptResult:
    """eps <- eps + SGD step on clip(grad_eps [R(D(M(eps))) - lambda P(eps)]); samples of the batch independently.

    The trace holds the reward of the iterate each step starts from, and a last row for the final iterate.
    """
    eps = noise.detach().clone().to(torch.float32).requires_grad_(True)
    optimizer = torch.optim.SGD([eps], lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    trace: list[RewardTraceRow] = []
    original = best = None
    since_best, steps_run = 0, 0
    for step in range(config.steps + 1):
        final = step == config.steps
        with torch.set_grad_enabled(not final):  # the last iterate is only evaluated
            reward, latents = reward_fn(eps)
        detached = reward.detach().float().cpu()
        trace.append(RewardTraceRow(step, detached.tolist(), config.lr))
        if on_step is not None:
            on_step(step, detached)
        current = (eps.detach().clone(), latents.detach().clone(), detached.clone())
        if original is None:
            original = current
        improved = best is None or bool((detached > best[2]).any())
        best = current if best is None else _better(best, current)
        since_best = 0 if improved else since_best + 1
        if final or _stop(detached, since_best, config):
            break
        objective = reward.sum() - config.reg_weight * norm_penalty(eps).sum()
        # gradients for eps alone: the network and decoder weights get none (and their backward is skipped)
        eps.grad = -torch.autograd.grad(objective, eps)[0]
        torch.nn.utils.clip_grad_norm_([eps], config.grad_clip)
        optimizer.step()
        steps_run += 1
    kept = best if config.keep_best else current
    return RewardOptResult(*original, *kept, norm_ratio=norm_ratio(kept[0], original[0]).cpu(), trace=trace,
                           steps_run=steps_run)


def sampled_reward(sampler: DifferentiableSampler,
                   score_pixels: Callable[[torch.Tensor, list[str]], torch.Tensor]) -> RewardFn:
    """eps -> (R(D(M(eps, c)), c), x0): the differentiable reward `optimize_reward` ascends, for pixels in [0, 1]."""
    def reward_fn(eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latents = sampler.latents(eps)
        return score_pixels(sampler.pixels(latents), [sampler.cond.prompt] * len(eps)), latents

    return reward_fn


def _stop(reward: torch.Tensor, since_best: int, config: RewardOptConfig) -> bool:
    if config.early_stop_reward is not None and bool((reward >= config.early_stop_reward).all()):
        return True
    return config.patience is not None and since_best >= config.patience


def _better(best, current):
    """Per sample, the iterate with the higher reward (ties keep the earlier one)."""
    better = current[2] > best[2]

    def pick(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        return torch.where(better.view(-1, *([1] * (new.dim() - 1))).to(new.device), new, old)

    return pick(current[0], best[0]), pick(current[1], best[1]), pick(current[2], best[2])


class RewardOptimization(Method):
    """ReNO from the prompt's seed (seed_start + i mod num_seeds); keeps `original` and `reward_optimized`."""

    name = "reward_opt"
    variants = (ORIGINAL, VariantSpec("reward_optimized", "Reward-optimized noise", "kept", starts_from="original"))
    comparisons = (Comparison("reward_optimized", "original"),)
    main_variant = "reward_optimized"
    sees = "verifier"

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, Any] | None:
        """n = floor((b - 1) / STEP_COST) gradient steps of the study's verifier after the first generation."""
        return {"steps": (budget.generations - 1) // STEP_COST, "verifier": budget.verifier, "num_seeds": 1}

    def __init__(self, verifier: str, steps: int = 50, lr: float = 5.0, momentum: float = 0.9, grad_clip: float = 0.1,
                 reg_weight: float = 0.01, keep_best: bool = True, early_stop_reward: float | None = None,
                 patience: int | None = None, budget_nfe: int | None = None,
                 verifier_options: Mapping[str, Any] | None = None, held_out: Sequence[str] | None = None,
                 seed_start: int = 0, num_seeds: int = 100, similarity: str = "cosine") -> None:
        super().__init__(similarity, seed_start, num_seeds)
        self.config = RewardOptConfig(
            steps=integer_param("method.steps", steps, 0), lr=real_param("method.lr", lr, 0.0),
            momentum=real_param("method.momentum", momentum, 0.0, below=1.0),
            grad_clip=real_param("method.grad_clip", grad_clip, 0.0),
            reg_weight=real_param("method.reg_weight", reg_weight, 0.0),
            keep_best=flag_param("method.keep_best", keep_best),
            early_stop_reward=None if early_stop_reward is None else real_param("method.early_stop_reward",
                                                                                early_stop_reward, -math.inf),
            patience=None if patience is None else integer_param("method.patience", patience, 1))
        self.budget_nfe = None if budget_nfe is None else integer_param("method.budget_nfe", budget_nfe, 1)
        check_held_out(verifier, list(held_out or ()))
        self.verifier_name = verifier
        self.verifier: Evaluator = load_verifier(verifier, verifier_options)
        if not self.verifier.differentiable:
            from noise_exp.evaluators.base import differentiable_evaluators

            raise NoiseExpError(f"method.verifier={verifier} is not differentiable (no score_pixels): method=reward_opt "
                                f"needs one of {', '.join(differentiable_evaluators())}")

    def steps_for(self, model: NoiseModel, cond: Conditioning) -> int:
        """`method.steps`, or as many gradient steps as `method.budget_nfe` buys after the first generation."""
        if self.budget_nfe is None:
            return self.config.steps
        generations = budget_count("method.budget_nfe", self.budget_nfe, generation_nfe(model, cond), "generation")
        return (generations - 1) // STEP_COST

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        sampler = DifferentiableSampler(model, cond)
        config = replace(self.config, steps=self.steps_for(model, cond))
        seed = self.prompt_seed(prompt_index)
        reward_fn = sampled_reward(sampler, self.verifier.score_pixels)
        start = time.perf_counter()
        first_s = []

        def on_step(step: int, reward: torch.Tensor) -> None:
            if step == 0:  # the original noise's generation and reward
                first_s.append(time.perf_counter() - start)
            if progress:
                progress(f"step {step}/{config.steps} reward={float(reward.mean()):.4f}")

        with NetworkPasses(model.network) as passes:
            result = optimize_reward(model.draw_noise([seed]), reward_fn, config, on_step)
        seconds = time.perf_counter() - start
        generation, nfe = counted_nfe(passes.count, result.steps_run)
        variants = [
            self.variant("original", seed, NO_STABILITY, result.original_noise[0], result.original_latents[0],
                    first_s[0], int(round(generation))),
            self.variant("reward_optimized", seed, NO_STABILITY, result.optimized_noise[0], result.optimized_latents[0],
                    seconds, nfe,
                    float(result.norm_ratio[0])),
        ]
        trace = [(row.step, NO_STABILITY, row.lr, row.reward[0]) for row in result.trace]
        return MethodOutput(variants, trace=trace)
