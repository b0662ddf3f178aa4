"""A user's mistake is one NoiseExpError that says what to fix."""
from __future__ import annotations

import pytest
import torch

import noise_exp as nx
from noise_exp.errors import NoiseExpError
from tests.api.conftest import FAMILIES, PROMPT

SETTINGS = FAMILIES["sd"][3]
ONE_STEP = {**SETTINGS, "num_inference_steps": 1}  # for the checks of what a verifier answers


def test_an_unsupported_pipeline_is_named_with_the_supported_ones(pipes):
    from diffusers import StableDiffusionImg2ImgPipeline

    img2img = StableDiffusionImg2ImgPipeline(**pipes("sd").components)
    message = ("cannot wrap a StableDiffusionImg2ImgPipeline: pass a diffusers StableDiffusionXLPipeline, "
               "StableDiffusionPipeline, StableDiffusion3Pipeline or FluxPipeline")
    with pytest.raises(NoiseExpError, match=message):
        nx.select(img2img, PROMPT, num_seeds=2, progress=False)
    with pytest.raises(NoiseExpError, match="cannot wrap a str"):
        nx.stability("sd15", PROMPT, torch.zeros(1, 4, 16, 16))


@pytest.mark.parametrize("call, message", [
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=0, **SETTINGS), "num_seeds must be >= 1, got 0"),
    (lambda pipe: nx.select(pipe, [PROMPT, PROMPT], num_seeds=2, **SETTINGS),
     r"prompt must be one string, got list \(call once per prompt\)"),
    (lambda pipe: nx.best_of_n(pipe, (PROMPT,), verifier=len, **SETTINGS), "prompt must be one string, got tuple"),
    (lambda pipe: nx.stability(pipe, PROMPT, torch.zeros(1, 4, 8, 8), **SETTINGS),
     r"latents must have shape \(B, 4, 16, 16\) for this StableDiffusionPipeline at 128x128, got \(1, 4, 8, 8\)"),
    (lambda pipe: nx.stability(pipe, PROMPT, torch.zeros(4, 16, 16), **SETTINGS),
     r"latents must have shape \(B, 4, 16, 16\) .* got \(4, 16, 16\)"),
    (lambda pipe: nx.optimize(pipe, PROMPT, latents=torch.zeros(1, 64, 64), steps=1, **SETTINGS),
     r"latents must have shape \(B, 4, 16, 16\)"),
    (lambda pipe: nx.optimize(pipe, PROMPT, steps=1, **SETTINGS), "give exactly one of seed= .* or latents="),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=2, proxy="partial:x", **SETTINGS), "proxy must be partial:<k>"),
    (lambda pipe: nx.best_of_n(pipe, PROMPT, verifier="no_such_scorer", **SETTINGS), "unknown verifier 'no_such_scorer'"),
    (lambda pipe: nx.reward_opt(pipe, PROMPT, seed=0, verifier="shapes_geneval", **SETTINGS),
     "verifier=shapes_geneval is not differentiable .* needs one of .*shapes_reward or a callable"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=2, proxy="norm", bank="unused", **SETTINGS),
     "bank= stores exact candidates; proxy scores are not candidates"),
    (lambda pipe: nx.select(pipe, None, num_seeds=1, **SETTINGS), "prompt must be one string, got NoneType$"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=2.5, **SETTINGS), "num_seeds must be an integer, got 2.5"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=2, seed_start=-1, **SETTINGS), "seed_start must be >= 0, got -1"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=2, seed_start=2**63 - 1, **SETTINGS),
     r"seed_start \+ num_seeds - 1 must be <= 2\*\*63 - 1, got 9223372036854775808"),
    (lambda pipe: nx.optimize(pipe, PROMPT, seed=2**64, steps=1, **SETTINGS), r"seed must be <= 2\*\*63 - 1"),
    (lambda pipe: nx.optimize(pipe, PROMPT, seed="3", steps=1, **SETTINGS), "seed must be an integer, got '3'"),
    (lambda pipe: nx.optimize(pipe, PROMPT, seed=0, steps=0, **SETTINGS), "steps must be >= 1, got 0"),
    (lambda pipe: nx.optimize(pipe, PROMPT, seed=0, steps=1, lr=0.0, **SETTINGS), "lr must be > 0, got 0.0"),
    (lambda pipe: nx.optimize(pipe, PROMPT, seed=0, steps=1, lr=float("nan"), **SETTINGS), "lr must be a finite number"),
    (lambda pipe: nx.optimize(pipe, PROMPT, latents=torch.zeros(2, 4, 16, 16), steps=1, **SETTINGS),
     "latents must hold one noise .batch 1., got a batch of 2"),
    (lambda pipe: nx.reward_opt(pipe, PROMPT, seed=0, steps=1, lr=-1, verifier=mean_pixel, **SETTINGS),
     "lr must be >= 0.0, got -1"),
    (lambda pipe: nx.reward_opt(pipe, PROMPT, seed=0, steps=0, verifier=mean_pixel, **SETTINGS), "steps must be >= 1"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=1, **{**SETTINGS, "num_inference_steps": 0}),
     "^num_inference_steps must be >= 1, got 0$"),
    (lambda pipe: nx.stability(pipe, PROMPT, torch.zeros(1, 4, 16, 16), **{**SETTINGS, "guidance_scale": -1}),
     "^guidance_scale must be >= 0.0, got -1$"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=1, **{**SETTINGS, "height": 128.5}), "^height must be an integer"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=1, progress="no", **SETTINGS), "progress must be true or false"),
    (lambda pipe: nx.select(pipe, PROMPT, num_seeds=1, callback=3, **SETTINGS),
     r"callback must be a callable\(seed, value\), got int"),
])
def test_bad_input_is_one_clear_error(pipes, call, message):
    with pytest.raises(NoiseExpError, match=message):
        call(pipes("sd"))


def mean_pixel(pixels, prompts):
    return pixels.mean(dim=(1, 2, 3))


def zero_division(*inputs):
    return 1 / 0


@pytest.mark.parametrize("verifier, message", [
    (lambda images, prompts: [1.0], "verifier <lambda> returned 1 scores for 2 images"),
    (lambda images, prompts: [1.0, 2.0, 3.0], "returned 3 scores for 2 images"),
    (lambda images, prompts: [0.5, float("nan")], r"verifier <lambda> returned a non-finite value \(nan\) for image 1 of 2"),
    (lambda images, prompts: torch.tensor(0.5), "must return one number per image, got Tensor"),
    (lambda images, prompts: ["high", "low"], "must return one number per image, got list"),
    (zero_division, "verifier zero_division raised ZeroDivisionError: division by zero"),
])
def test_a_verifier_that_answers_wrongly_is_one_clear_error(pipes, verifier, message):
    with pytest.raises(NoiseExpError, match=message):
        nx.best_of_n(pipes("sd"), PROMPT, num_seeds=2, verifier=verifier, progress=False, **ONE_STEP)


@pytest.mark.parametrize("verifier, message", [
    (lambda pixels, prompts: pixels.mean(), r"must return a tensor of one reward per image, shape \(1,\), got \(\)"),
    (lambda pixels, prompts: [1.0], r"shape \(1,\), got list"),
    (lambda pixels, prompts: mean_pixel(pixels, prompts) * float("nan"), "returned a non-finite value .nan. for image 0"),
    (zero_division, "verifier zero_division raised ZeroDivisionError"),
])
def test_a_pixel_reward_that_answers_wrongly_is_one_clear_error(pipes, verifier, message):
    with pytest.raises(NoiseExpError, match=message):
        nx.reward_opt(pipes("sd"), PROMPT, seed=0, steps=1, verifier=verifier, progress=False, **ONE_STEP)


def test_numpy_integers_are_seeds(pipes):
    """A seed read back from `choice.candidates` is a numpy integer."""
    choice = nx.select(pipes("sd"), PROMPT, num_seeds=2, progress=False, **SETTINGS)
    seed = choice.candidates.seed.iloc[1]
    assert type(seed).__module__ == "numpy"
    better = nx.optimize(pipes("sd"), PROMPT, seed=seed, steps=1, progress=False, **SETTINGS)
    assert better.seed == 1 and better.original_stability == pytest.approx(choice.candidates.stability.iloc[1], abs=1e-6)
