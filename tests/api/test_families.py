"""Per family (SD 1.x, SDXL, SD3, FLUX): the chosen latents are the pipeline's own draw of the chosen seed, the
stability is eq. 3 of those latents, and the user's scheduler is untouched."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import noise_exp as nx
from tests.api.conftest import FAMILIES, PROMPT


def image(pipe, settings, **source):
    return pipe(PROMPT, output_type="np", **settings, **source).images


@pytest.mark.parametrize("family", list(FAMILIES))
def test_select_hands_over_the_seeds_own_noise(pipes, family):
    pipe = pipes(family)
    settings = FAMILIES[family][3]
    scheduler, config = pipe.scheduler, copy.deepcopy(dict(pipe.scheduler.config))
    state = (scheduler.timesteps.clone() if isinstance(scheduler.timesteps, torch.Tensor) else scheduler.timesteps.copy(),
             getattr(scheduler, "num_inference_steps", None))
    heard = []
    choice = nx.select(pipe, PROMPT, num_seeds=4, progress=False, callback=lambda seed, s: heard.append((seed, s)),
                       batch_size=3, **settings)
    assert pipe.scheduler is scheduler and dict(pipe.scheduler.config) == config
    assert (scheduler.timesteps == state[0]).all() and getattr(scheduler, "num_inference_steps", None) == state[1]
    assert list(choice.candidates.seed) == [0, 1, 2, 3]
    assert heard == list(zip(choice.candidates.seed, choice.candidates.stability))  # in seed order
    assert choice.stability == choice.candidates.stability.max()
    assert choice.seed == int(choice.candidates.seed[choice.candidates.stability.idxmax()])
    assert choice.latents.dtype == pipe.dtype and choice.latents.device == pipe.device
    passes = 3 if family != "flux" else 2  # CFG denoising (2) + unguided inversion (1); FLUX embeds its guidance
    assert choice.nfe == 4 * settings["num_inference_steps"] * passes and choice.seconds > 0
    chosen = image(pipe, settings, latents=choice.latents)
    drawn = image(pipe, settings, generator=torch.Generator("cpu").manual_seed(choice.seed))
    np.testing.assert_array_equal(chosen, drawn)
    other = image(pipe, settings, generator=torch.Generator("cpu").manual_seed(choice.seed + 1))
    assert np.abs(chosen - other).max() > 1e-3  # the check above can fail
    assert nx.stability(pipe, PROMPT, choice.latents, **{k: v for k, v in settings.items()}) == \
        pytest.approx(choice.stability, abs=1e-5)


def test_flux_schnell_without_a_guidance_input():
    """A FLUX.1-schnell-like pipe (no guidance embedding, static shift 1): its guidance_scale is ignored by the
    pipeline, and by nx.select too. Not square (64 x 32), so that packing or unpacking with the sides swapped fails."""
    from noise_exp.builders.tiny_flow import TinyFluxBuilder

    torch.manual_seed(0)
    pipe, _ = TinyFluxBuilder(guidance_embeds=False, dynamic_shifting=False, shift=1.0).build()
    pipe.set_progress_bar_config(disable=True)
    settings = {"num_inference_steps": 2, "height": 64, "width": 32, "max_sequence_length": 16}
    choice = nx.select(pipe, PROMPT, num_seeds=2, guidance_scale=3.5, progress=False, **settings)
    assert choice.nfe == 2 * 2 * 2  # one pass per step, no guidance batch
    assert choice.latents.shape == (1, 4 * 2, 4 * 16)  # [H/16 * W/16 tokens, 4C]
    chosen = image(pipe, settings, latents=choice.latents)
    np.testing.assert_array_equal(chosen, image(pipe, settings, generator=torch.Generator("cpu").manual_seed(choice.seed)))
    assert nx.stability(pipe, PROMPT, choice.latents, **settings) == pytest.approx(choice.stability, abs=1e-6)
    # the stability is blind to how tokens map onto the grid; the decoded image is not
    mean_pixel = lambda pixels, prompts: pixels.mean(dim=(1, 2, 3))  # noqa: E731
    seeded, handed = (nx.reward_opt(pipe, PROMPT, steps=1, verifier=mean_pixel, progress=False, **source, **settings)
                      for source in ({"seed": choice.seed}, {"latents": choice.latents}))
    assert handed.original_reward == seeded.original_reward
