"""The SD3 and FLUX adapters on tiny models: plain diffusers reproduces our denoising, the inversion walks the
denoiser's sigma pairs backwards, and Algorithms 1 and 2 run on them end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline

from noise_exp.methods import NoiseOptimization, NoiseSelection
from noise_exp.models.flow_matching import pack_latents, unpack_latents
from noise_exp.similarity import stability
from tests.conftest import CONF, compose_cfg
from tests.models.flow_matching.conftest import with_settings

PROMPT = "a small house by a lake"
SEEDS = (0, 7)
MODELS = ["tiny_sd3", "tiny_flux", "tiny_schnell"]


def pipeline_latents(model, seed: int, guidance_scale: float) -> torch.Tensor:
    """`pipe(prompt, ..., generator=Generator('cpu').manual_seed(seed), output_type='latent')`, as [1, C, H, W]."""
    latents = model.pipe(PROMPT, num_inference_steps=model.num_steps, guidance_scale=guidance_scale, height=model.height,
                         width=model.width, max_sequence_length=model.max_sequence_length,
                         generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images
    return unpack_latents(latents, *model.latent_shape[1:]) if isinstance(model.pipe, FluxPipeline) else latents


def shipped_samplers() -> list:
    """(tiny model of the family, steps, guidance) of every flow-matching config in conf/model/."""
    cases = []
    for path in sorted((CONF / "model").glob("*.yaml")):
        config = compose_cfg([f"model={path.stem}"]).model
        if config._target_.startswith("noise_exp.models.flow_matching."):
            family = "tiny_sd3" if "StableDiffusion3" in config._target_ else \
                "tiny_flux" if config.guidance_scale else "tiny_schnell"
            cases.append(pytest.param(family, config.num_steps, config.guidance_scale, id=path.stem))
    return cases


@pytest.mark.parametrize("name,num_steps,guidance_scale", [
    *shipped_samplers(), ("tiny_sd3", 4, 1.0), ("tiny_flux", 4, 1.0)])
def test_denoising_equals_the_diffusers_pipeline_for_the_same_seed(request, name, num_steps, guidance_scale):
    model = with_settings(request.getfixturevalue(name), num_steps=num_steps, guidance_scale=guidance_scale)
    ours = model.denoise(model.draw_noise(list(SEEDS)), model.encode_prompt(PROMPT))
    for row, seed in zip(ours, SEEDS):
        theirs = pipeline_latents(model, seed, guidance_scale or 0.0)[0]
        assert float((row - theirs).norm() / theirs.norm()) < 1e-5
        assert float((row - theirs).abs().max()) < 1e-5
    assert model.pipe.scheduler.sigmas.tolist() == pytest.approx(list(model.schedule.sigmas), abs=0)


@pytest.mark.parametrize("name", MODELS)
def test_a_chosen_seed_reproduces_its_image_in_plain_diffusers(request, name):
    model = request.getfixturevalue(name)
    image = model.decode(model.denoise(model.draw_noise([11]), model.encode_prompt(PROMPT)))[0]
    theirs = model.pipe(PROMPT, num_inference_steps=model.num_steps, guidance_scale=model.guidance_scale or 0.0,
                        height=model.height, width=model.width, max_sequence_length=model.max_sequence_length,
                        generator=torch.Generator("cpu").manual_seed(11)).images[0]
    difference = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(theirs, dtype=np.int16))
    assert image.size == theirs.size == (model.width, model.height)
    assert difference.max() <= 1 and difference.mean() < 0.01  # 8-bit rounding of float-equal pixels at most


@pytest.mark.parametrize("name", MODELS)
def test_draw_noise_is_what_the_pipeline_draws_unpacked(request, name):
    model = request.getfixturevalue(name)
    noise = model.draw_noise([3, 4])
    assert noise.shape == (2, *model.latent_shape) and noise.dtype == torch.float32
    for row, seed in zip(noise, [3, 4]):
        drawn = model.pipe.prepare_latents(1, model.latent_shape[0], model.height, model.width, torch.float32,
                                           torch.device("cpu"), torch.Generator("cpu").manual_seed(seed))
        drawn = drawn[0] if isinstance(drawn, tuple) else drawn  # FLUX returns (packed latents, image ids)
        expected = pack_latents(row[None]) if isinstance(model.pipe, FluxPipeline) else row[None]
        assert torch.equal(drawn, expected)


def test_packing_is_fluxs_and_unpacking_inverts_it():
    torch.manual_seed(0)
    latents = torch.randn(2, 16, 8, 12)
    packed = pack_latents(latents)
    assert torch.equal(packed, FluxPipeline._pack_latents(latents, 2, 16, 8, 12))
    assert torch.equal(unpack_latents(packed, 8, 12), latents)
    assert torch.equal(FluxPipeline._unpack_latents(packed, 8 * 8, 12 * 8, 8), latents)


@pytest.mark.parametrize("name", MODELS)
def test_inversion_walks_the_denoisers_timesteps_backwards_with_the_euler_inversion_step(request, name):
    model = request.getfixturevalue(name)
    cond = model.encode_prompt(PROMPT)
    timesteps = []
    hook = model.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: timesteps.append(float(kwargs["timestep"][0])), with_kwargs=True)
    calls = []
    velocity = model._velocity

    def recording_velocity(sample, step, cond_, guidance):
        output = velocity(sample, step, cond_, guidance)
        calls.append((sample.clone(), step, output.clone()))
        return output

    try:
        latents = model.denoise(model.draw_noise([5]), cond)
        denoise_timesteps, timesteps[:] = list(timesteps), []
        model._velocity = recording_velocity
        inverted = model.invert(latents, cond)
    finally:
        hook.remove()
        del model._velocity
    assert timesteps == denoise_timesteps[::-1]  # the denoiser's timesteps, reversed: no gaps, no extra level
    assert [step for _, step, _ in calls] == list(reversed(range(model.num_steps)))
    sample = latents.double()
    for x_in, step, v in calls:
        assert torch.allclose(x_in.double(), sample, atol=1e-6)
        sigma, sigma_next = model.schedule.pair(step)
        sample = sample - (sigma_next - sigma) * v.double()  # x_sigma = x_{sigma_next} - (sigma_next - sigma) v
    assert torch.allclose(inverted.double(), sample, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_stability_and_selection_run_end_to_end(request, name):
    model = request.getfixturevalue(name)
    cond = model.encode_prompt(PROMPT)
    output = NoiseSelection(num_seeds=3, batch_size=2).run(model, cond, 0)
    scores = dict(output.selection_scores)
    assert sorted(scores) == [0, 1, 2]
    stable, unstable = output.variants
    assert (stable.name, unstable.name) == ("stable", "unstable")
    assert stable.seed == max(scores, key=scores.get) and unstable.seed == min(scores, key=scores.get)
    assert stable.noise.shape == model.latent_shape and stable.latents.shape == model.latent_shape
    assert stable.unet_calls == 3 * model.unet_calls_per_roundtrip
    # the kept score is eq. (3) on a fresh round trip of the kept seed's noise
    noise = model.draw_noise([stable.seed])
    again = stability(noise, model.invert(model.denoise(noise, cond), cond))
    assert float(again) == pytest.approx(stable.stability, abs=1e-6)
    assert 0.9 < unstable.stability <= stable.stability < 1.0  # random weights: near, but not at, a fixed point


@pytest.mark.parametrize("name", ["tiny_sd3", "tiny_flux"])
def test_optimization_raises_stability_step_by_step(request, name):
    model = request.getfixturevalue(name)
    output = NoiseOptimization(steps=3, lr=4000.0, num_seeds=100).run(model, model.encode_prompt("a red bicycle"), 0)
    original, optimized = output.variants
    trace = [stability for _, stability, _ in output.trace]
    assert all(b > a for a, b in zip(trace, trace[1:])), trace
    assert 1 - optimized.stability < 0.9 * (1 - original.stability), (original.stability, optimized.stability)


def test_transformer_calls_per_roundtrip(tiny_sd3, tiny_flux, tiny_schnell):
    assert tiny_sd3.unet_calls_per_roundtrip == 4 * (2 + 1)  # CFG while denoising, none while inverting
    assert tiny_flux.unet_calls_per_roundtrip == 4 * (1 + 1)  # guidance is an embedding, not a batch
    assert tiny_schnell.unet_calls_per_roundtrip == 4 * 2
