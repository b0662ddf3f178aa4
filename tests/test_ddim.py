"""Eq. (1) and eq. (2) on the tiny models against diffusers and against their closed forms."""
from __future__ import annotations

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler
from hydra.utils import instantiate

from noise_exp.ddim import ddim_denoise_step, ddim_inversion_step
from tests.conftest import compose_cfg


def test_inversion_step_is_the_exact_inverse_of_the_denoise_step_for_fixed_noise():
    torch.manual_seed(0)
    x_t, eps = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.randn(2, 4, 8, 8, dtype=torch.float64)
    for alpha_t, alpha_prev in [(0.05, 0.3), (0.5, 0.9), (0.9, 0.9991)]:
        x_prev = ddim_denoise_step(x_t, eps, alpha_t, alpha_prev)
        assert torch.allclose(ddim_inversion_step(x_prev, eps, alpha_prev, alpha_t), x_t, atol=1e-10)
        # eq. (2) equals the x0-parameterised DDIM update
        pred_x0 = (x_prev - (1 - alpha_prev) ** 0.5 * eps) / alpha_prev**0.5
        expected = alpha_t**0.5 * pred_x0 + (1 - alpha_t) ** 0.5 * eps
        assert torch.allclose(ddim_inversion_step(x_prev, eps, alpha_prev, alpha_t), expected, atol=1e-10)


def drive_inverse_scheduler(model, cond, latents, timestep_cond=None):
    """DDIM inversion with diffusers' DDIMInverseScheduler, driven through the same UNet (no CFG)."""
    inverse = DDIMInverseScheduler.from_config(model.pipe.scheduler.config)
    inverse.set_timesteps(model.num_steps)
    sample = latents.clone()
    kwargs = model._unet_conditioning(cond, sample.shape[0], guided=False)
    with torch.no_grad():
        for t in inverse.timesteps:
            output = model.unet(sample, t, timestep_cond=timestep_cond, return_dict=False, **kwargs)[0]
            sample = inverse.step(output, t, sample).prev_sample
    return sample


@pytest.mark.parametrize("num_steps", [4, 10])
def test_inversion_matches_diffusers_ddim_inverse_scheduler_leading(tiny_sdxl, num_steps):
    model = instantiate(compose_cfg(["model=tiny_sdxl", f"model.num_steps={num_steps}"]).model)
    assert model.scheduler.config.timestep_spacing == "leading"
    cond = model.encode_prompt("a photo of a cat")
    latents = model.denoise(model.draw_noise([0, 1]), cond)
    ours = model.invert(latents, cond)
    theirs = drive_inverse_scheduler(model, cond, latents)
    rel = (ours - theirs).norm() / theirs.norm()
    assert rel <= 1e-4, rel


@pytest.mark.parametrize("num_steps", [3, 4, 7])
def test_inversion_with_trailing_spacing_follows_eq2_step_by_step(num_steps):
    model = instantiate(compose_cfg(["model=tiny_sdxl", f"model.num_steps={num_steps}",
                                     "model.timestep_spacing=trailing"]).model)
    assert model.scheduler.config.timestep_spacing == "trailing"
    assert int(model.schedule.timesteps[0]) == 999  # trailing starts at the last training step
    cond = model.encode_prompt("a red bicycle")
    latents = model.denoise(model.draw_noise([3]), cond)

    calls = []
    pre = model.unet.register_forward_pre_hook(lambda m, args, kw: calls.append([args[0].clone(), int(args[1])]), with_kwargs=True)
    post = model.unet.register_forward_hook(lambda m, args, out: calls[-1].append(out[0].clone()))
    try:
        inverted = model.invert(latents, cond)
    finally:
        pre.remove(), post.remove()

    alphas = model.scheduler.alphas_cumprod.double()
    levels = [float(model.scheduler.final_alpha_cumprod)] + [float(alphas[t]) for t in reversed(model.schedule.timesteps)]
    visited = [t for _, t, _ in calls]
    assert visited == [int(t) for t in reversed(model.schedule.timesteps)]  # no gaps: the denoising timesteps, reversed
    sample = latents.double()
    for k, (x_in, t, eps) in enumerate(calls):
        assert torch.allclose(x_in.double(), sample, atol=1e-5)
        a_prev, a_t = levels[k], levels[k + 1]
        assert a_t == pytest.approx(float(alphas[t]))
        # closed form of eq. (2): x_t = sqrt(a_t / a_prev) x_{t-1} + sqrt(a_t) (sqrt((1-a_t)/a_t) - sqrt((1-a_prev)/a_prev)) u
        eps = eps.double()
        sample = (a_t / a_prev) ** 0.5 * sample + a_t**0.5 * (((1 - a_t) / a_t) ** 0.5 - ((1 - a_prev) / a_prev) ** 0.5) * eps
    assert torch.allclose(inverted.double(), sample, rtol=1e-4, atol=1e-4)


def test_diffusers_inverse_scheduler_has_a_gap_with_trailing_spacing_that_we_avoid():
    """Why we walk our own timestep pairs: DDIMInverseScheduler lands on t-1000//T, not the previous timestep."""
    config = compose_cfg(["model=tiny_sdxl"]).model
    model = instantiate(config)
    scheduler = DDIMScheduler.from_config(model.pipe.scheduler.config, timestep_spacing="trailing")
    scheduler.set_timesteps(3)
    inverse = DDIMInverseScheduler.from_config(scheduler.config)
    inverse.set_timesteps(3)
    their_from_levels = [int(t) - 1000 // 3 for t in inverse.timesteps][1:]
    true_previous = [int(t) for t in inverse.timesteps][:-1]
    assert their_from_levels != true_previous


def test_draw_noise_is_what_the_pipeline_draws_for_each_seed(tiny_sdxl):
    from diffusers.utils.torch_utils import randn_tensor

    noise = tiny_sdxl.draw_noise([0, 5])
    for row, seed in zip(noise, [0, 5]):
        expected = randn_tensor((1, *tiny_sdxl.latent_shape), generator=torch.Generator("cpu").manual_seed(seed))
        assert torch.equal(row[None], expected)
    assert not torch.equal(noise[0], noise[1])
