"""A user's mistake is one NoiseExpError that says what to fix."""
from __future__ import annotations

import pytest
import torch

import noise_exp as nx
from noise_exp.errors import NoiseExpError
from tests.api.conftest import FAMILIES, PROMPT

SETTINGS = FAMILIES["sd"][3]


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
])
def test_bad_input_is_one_clear_error(pipes, call, message):
    with pytest.raises(NoiseExpError, match=message):
        call(pipes("sd"))
