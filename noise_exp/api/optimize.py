"""`nx.optimize` (Algorithm 2) and `nx.reward_opt` (ReNO) on a user's pipeline, through the functions
`method=optimize` and `method=reward_opt` call (`optimize_noise`, `optimize_reward`)."""
from __future__ import annotations

import time
from typing import Any, Callable

import pandas as pd
import torch

from noise_exp.api.pipelines import Sampling, check_seed, from_pipe_latents, prepare, to_pipe_latents, untouched
from noise_exp.api.progress import Progress
from noise_exp.api.results import Optimized, RewardOptimized
from noise_exp.api.verifiers import PixelReward, pixel_reward
from noise_exp.errors import NoiseExpError
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.differentiable import DifferentiableSampler
from noise_exp.methods.method import trace_rows
from noise_exp.methods.optimization import OPTIMIZERS, OptimizationConfig, optimize_noise, paper_equivalent_lr
from noise_exp.methods.reward_opt import RewardOptConfig, counted_nfe, optimize_reward, sampled_reward
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.models.base import NoiseModel
from noise_exp.params import choice_param, flag_param, integer_param, positive_param, real_param
from noise_exp.similarity import get_similarity


def start_noise(model: NoiseModel, seed: int | None, latents: torch.Tensor | None) -> tuple[torch.Tensor, int | None]:
    """The noise to start from: the seed's draw, or the given `latents=` (exactly one of them)."""
    if (seed is None) == (latents is None):
        raise NoiseExpError("give exactly one of seed= (its noise, as the pipeline draws it) or latents=")
    if latents is not None:
        noise = from_pipe_latents(model, latents)
        if len(noise) != 1:
            raise NoiseExpError(f"latents must hold one noise (batch 1), got a batch of {len(noise)}")
        return noise, None
    seed = check_seed("seed", seed)
    return model.draw_noise([seed]), seed


def optimize(pipe: Any, prompt: str, seed: int | None = None, *, latents: torch.Tensor | None = None,
             steps: int = 100, lr: float | None = None, momentum: float = 0.5, lr_schedule: str = "cosine",
             optimizer: str = "sgd", keep_best: bool = False, num_inference_steps: int | None = None,
             guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
             similarity: str = "cosine", inversion_guidance_scale: float = 1.0, max_sequence_length: int | None = None,
             progress: bool = True, callback: Callable[[int, float], None] | None = None) -> Optimized:
    """Algorithm 2: `steps` gradient steps on J(eps) = 1 - cos(eps, F(eps)) from the seed's noise (or `latents`).
    `lr=None` is the paper's step for this latent size and step count (`paper_equivalent_lr`: 100 for SDXL's
    128x128 latents over 100 steps); `callback(step, stability)` hears each step."""
    start = time.perf_counter()
    with untouched(pipe):
        model, cond = prepare(pipe, prompt, Sampling(num_inference_steps, guidance_scale, height, width,
                                                     inversion_guidance_scale, max_sequence_length))
        noise, seed = start_noise(model, seed, latents)
        steps = integer_param("steps", steps, 1)
        if lr is None:
            lr = paper_equivalent_lr(noise[0].numel(), steps)
        config = OptimizationConfig(steps=steps, lr=positive_param("lr", lr),
                                    momentum=real_param("momentum", momentum, 0.0, below=1.0),
                                    lr_schedule=choice_param("lr_schedule", lr_schedule, ("cosine", "constant")),
                                    optimizer=choice_param("optimizer", optimizer, OPTIMIZERS),
                                    keep_best=flag_param("keep_best", keep_best))
        bar = Progress(steps, "nx.optimize", progress, callback, unit="step")
        try:
            with NetworkPasses(model.network) as passes:
                result = optimize_noise(noise, [-1 if seed is None else seed], ModelRoundTrip(model, cond), config,
                                        get_similarity(similarity), bar.step)
        finally:
            bar.close()
        latents = to_pipe_latents(model, result.optimized_noise)
    trace = pd.DataFrame(trace_rows(result), columns=["step", "stability", "lr"])
    return Optimized(latents, seed, float(result.optimized_stability[0]), float(result.original_stability[0]),
                     float(result.norm_ratio[0]), trace, passes.count, time.perf_counter() - start)


def reward_opt(pipe: Any, prompt: str, seed: int | None = None, *, verifier: str | PixelReward,
               latents: torch.Tensor | None = None, steps: int = 50, lr: float = 5.0, momentum: float = 0.9,
               grad_clip: float = 0.1, reg_weight: float = 0.01, keep_best: bool = True,
               num_inference_steps: int | None = None, guidance_scale: float | None = None, height: int | None = None,
               width: int | None = None, max_sequence_length: int | None = None, progress: bool = True,
               callback: Callable[[int, float], None] | None = None) -> RewardOptimized:
    """ReNO: gradient ascent on `verifier`'s reward of the decoded image with respect to the noise, back-propagated
    through the sampler and the VAE. `verifier` is a differentiable evaluator's name or a
    callable(pixels [B, 3, H, W] in [0, 1], prompts) -> rewards [B]; `callback(step, reward)` hears each step."""
    start = time.perf_counter()
    reward = pixel_reward(verifier)
    with untouched(pipe):
        model, cond = prepare(pipe, prompt, Sampling(num_inference_steps, guidance_scale, height, width,
                                                     max_sequence_length=max_sequence_length))
        noise, seed = start_noise(model, seed, latents)
        config = RewardOptConfig(steps=integer_param("steps", steps, 1), lr=positive_param("lr", lr),
                                 momentum=real_param("momentum", momentum, 0.0, below=1.0),
                                 grad_clip=real_param("grad_clip", grad_clip, 0.0),
                                 reg_weight=real_param("reg_weight", reg_weight, 0.0),
                                 keep_best=flag_param("keep_best", keep_best))
        reward_fn = sampled_reward(DifferentiableSampler(model, cond, "nx.reward_opt"), reward)
        bar = Progress(config.steps + 1, "nx.reward_opt", progress, callback, unit="step")
        try:
            with NetworkPasses(model.network) as passes:
                result = optimize_reward(noise, reward_fn, config, bar.step)
        finally:
            bar.close()
        latents = to_pipe_latents(model, result.optimized_noise)
    trace = pd.DataFrame([(row.step, row.reward[0], row.lr) for row in result.trace], columns=["step", "reward", "lr"])
    return RewardOptimized(latents, seed, float(result.optimized_reward[0]), float(result.original_reward[0]),
                           float(result.norm_ratio[0]), trace, counted_nfe(passes.count, result.steps_run)[1],
                           time.perf_counter() - start)
