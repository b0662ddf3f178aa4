"""best_of_n, random and reward_opt on the committed small_shapes model with the shapes world's learned reward."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from noise_exp.evaluators.shapes_reward import images_to_pixels

from noise_exp.errors import NoiseExpError
from noise_exp.methods.best_of_n import BestOfN, RandomPick, random_position
from noise_exp.methods.differentiable import DifferentiableSampler, generation_nfe
from noise_exp.methods.reward_opt import RewardOptimization, norm_penalty, reward_opt_cost
from tests.conftest import compose_cfg

PROMPT = "a triangle and a square"  # the reward of seed 1 is far from saturated (0.71)


@pytest.fixture(scope="module")
def shapes():
    model = instantiate(compose_cfg(["model=small_shapes", "model.device=cpu"]).model)
    return model, model.encode_prompt(PROMPT)


def test_best_of_n_keeps_the_verifiers_argmax_and_counts_n_generations(shapes):
    model, cond = shapes
    method = BestOfN("shapes_reward", num_seeds=5, seed_start=3, batch_size=2)
    output = method.run(model, cond, prompt_index=7)
    variants = {v.name: v for v in output.variants}
    seeds = list(range(3, 8))
    images = model.decode(model.denoise(model.draw_noise(seeds), cond), cond)  # all N scored here, in one batch
    scores = method.verifier.score(images, prompts=[PROMPT] * 5)
    assert variants["best"].seed == seeds[int(scores.argmax())] and variants["worst"].seed == seeds[int(scores.argmin())]
    assert variants["best"].seed != variants["worst"].seed  # else the test could not tell them apart
    assert variants["random"].seed == seeds[random_position(0, 7, 5)]
    generation = generation_nfe(model, cond)
    assert generation == model.num_steps * 2  # guidance 2: CFG doubles each of the T passes
    assert variants["best"].unet_calls == variants["worst"].unet_calls == 5 * generation
    assert variants["random"].unet_calls == generation
    assert torch.equal(variants["best"].noise, model.draw_noise([variants["best"].seed])[0])
    picked = RandomPick(num_seeds=5, seed_start=3).run(model, cond, prompt_index=7).variants[0]
    assert (picked.seed, picked.unet_calls) == (variants["random"].seed, generation)


def test_the_reward_gradient_reaches_the_noise_and_matches_a_finite_difference(shapes):
    model, cond = shapes
    sampler = DifferentiableSampler(model, cond)
    noise = model.draw_noise([1]).requires_grad_(True)
    latents = sampler.latents(noise)
    pixels = sampler.pixels(latents)
    # the differentiable path draws the plain pipeline's image (PNG rounding apart)
    plain = images_to_pixels(model.decode(model.denoise(model.draw_noise([1]), cond), cond))
    assert float((pixels.detach() - plain).abs().max()) <= 0.5 / 255 + 1e-5
    reward_net = RewardOptimization("shapes_reward").verifier
    reward = reward_net.score_pixels(pixels, [PROMPT])
    (grad,) = torch.autograd.grad(reward.sum(), noise)
    assert torch.isfinite(grad).all() and float(grad.norm()) > 0
    direction = grad / grad.norm()
    step = 1e-2
    with torch.no_grad():
        ahead, behind = (reward_net.score_pixels(sampler.pixels(sampler.latents(noise + s * direction)), [PROMPT])
                         for s in (step, -step))
    slope = float((ahead - behind) / (2 * step))
    assert slope == pytest.approx(float(grad.norm()), rel=0.1)


def test_reward_opt_raises_the_reward_and_counts_four_generations_per_step(shapes):
    model, cond = shapes
    method = RewardOptimization("shapes_reward", steps=2, num_seeds=1, seed_start=1)
    output = method.run(model, cond, prompt_index=0)
    original, optimized = output.variants
    rewards = [row[3] for row in output.trace]
    assert len(rewards) == 3 and rewards[-1] > rewards[0] + 0.05  # measured: 0.713, 0.805, 0.814
    assert max(rewards) == pytest.approx(rewards[-1])  # keep_best returns the best iterate: here the last
    generation = model.num_steps * 2
    assert original.unet_calls == generation
    assert optimized.unet_calls == reward_opt_cost(2, generation) == 9 * generation
    assert not torch.equal(original.noise, optimized.noise) and optimized.norm_ratio != 1.0


def test_norm_penalty_is_least_at_the_chi_mode():
    d = 256
    radii = torch.linspace(10, 22, 1201)
    direction = torch.randn(d)
    penalties = norm_penalty(radii[:, None] * (direction / direction.norm())[None])
    assert float(radii[int(penalties.argmin())]) == pytest.approx((d - 1) ** 0.5, abs=0.01)


def one_line_error(match: str, action) -> None:
    with pytest.raises(NoiseExpError, match=match) as raised:
        action()
    assert "\n" not in str(raised.value)


def test_bad_inputs_raise_one_line(shapes, tmp_path):
    model, cond = shapes
    one_line_error("not differentiable", lambda: RewardOptimization("digit_classifier"))
    one_line_error("below one generation", lambda: RewardOptimization("shapes_reward", budget_nfe=19).run(model, cond, 0))
    one_line_error("below one generation", lambda: BestOfN("shapes_reward", budget_nfe=10).run(model, cond, 0))
    missing = RewardOptimization("shapes_reward", steps=1, verifier_options={"weights": str(tmp_path)})
    one_line_error("no shapes reward weights", lambda: missing.run(model, cond, 0))
    one_line_error("held-out judge", lambda: BestOfN("shapes_geneval", held_out=["shapes_geneval"]))
    one_line_error("unknown method.verifier", lambda: BestOfN("shapes_rewrd"))
