"""reward_opt (ReNO) on the flow-matching models: gradient ascent through the Euler sampler and the VAE decoder."""
from __future__ import annotations

import pytest
import torch

from noise_exp.evaluators.shapes_reward import images_to_pixels

from noise_exp.methods.differentiable import DifferentiableSampler, generation_nfe
from noise_exp.methods.reward_opt import RewardOptimization, reward_opt_cost

PROMPT = "a triangle and a square"  # shapes_reward reads the shapes grammar; the tiny models take any text


@pytest.mark.parametrize("family", ["tiny_flux", "tiny_sd3"])
def test_reward_opt_raises_the_reward_through_the_euler_sampler(family, request):
    model = request.getfixturevalue(family)
    cond = model.encode_prompt(PROMPT)
    # the differentiable path (denoise_step, vae_input; FLUX packs around the transformer) draws the plain image
    sampler = DifferentiableSampler(model, cond)
    plain = images_to_pixels(model.decode(model.denoise(model.draw_noise([0]), cond), cond))
    with torch.no_grad():
        assert float((sampler.pixels(sampler.latents(model.draw_noise([0]))) - plain).abs().max()) <= 0.5 / 255 + 1e-5
    output = RewardOptimization("shapes_reward", steps=2, num_seeds=1, seed_start=0).run(model, cond, prompt_index=0)
    original, optimized = output.variants
    rewards = [row[3] for row in output.trace]
    # measured (seed 0): tiny_flux 0.478, 0.492, 0.510; tiny_sd3 0.534, 0.565, 0.588
    assert len(rewards) == 3 and rewards[0] < rewards[1] < rewards[2] and rewards[2] > rewards[0] + 0.02
    assert original.seed == optimized.seed == 0 and torch.equal(original.noise, model.draw_noise([0])[0])
    generation = model.num_steps * (2 if family == "tiny_sd3" else 1)  # SD3 at CFG 5: two passes a step
    assert generation_nfe(model, cond) == original.unet_calls == generation
    assert optimized.unet_calls == reward_opt_cost(2, generation) == 9 * generation
    assert not torch.equal(original.noise, optimized.noise) and optimized.norm_ratio != 1.0
