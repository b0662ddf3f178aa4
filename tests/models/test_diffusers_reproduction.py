"""A chosen seed's latents equal plain diffusers' output (docs/CONVENTIONS.md "Seeds"), for every shipped model config's sampler.

Each config's sampler settings (num_steps, timestep_spacing, guidance_scale) run on the tiny model of its pipeline
family, in float32, against `pipe(prompt, ..., generator=Generator("cpu").manual_seed(seed), output_type="latent")`
with the DDIM scheduler the adapter uses.
"""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from noise_exp.models import StableDiffusionModel, StableDiffusionXLModel
from noise_exp.models.stable_diffusion import ddim_scheduler_for
from noise_exp.builders.tiny_sd import TinySDBuilder
from tests.conftest import CONF, compose_cfg
from tests.test_ddim import drive_inverse_scheduler

PROMPT = "a small house by a lake"
SEEDS = (0, 7)
TINY_OF_FAMILY = {"noise_exp.models.StableDiffusionXLModel.from_pretrained": "tiny_sdxl",
                  "noise_exp.models.StableDiffusionModel.from_pretrained": "tiny_sd"}
# SV3D has no diffusers text-to-image pipeline; the flow-matching models are checked in tests/models/flow_matching
NO_DIFFUSERS_PIPELINE = {"noise_exp.models.sv3d.SV3DModel.from_pretrained",
                         "noise_exp.models.flow_matching.StableDiffusion3Model.from_pretrained",
                         "noise_exp.models.flow_matching.FluxModel.from_pretrained"}


def shipped_samplers() -> list:
    cases = []
    for path in sorted((CONF / "model").glob("*.yaml")):
        model = compose_cfg([f"model={path.stem}"]).model  # as run.py composes it (the model's base included)
        if model._target_ in NO_DIFFUSERS_PIPELINE:
            continue
        assert model._target_ in TINY_OF_FAMILY, f"{path.name}: which tiny model reproduces its pipeline family?"
        cases.append(pytest.param(TINY_OF_FAMILY[model._target_], model.num_steps, model.timestep_spacing,
                                  model.guidance_scale, id=path.stem))
    return cases


def relative_differences(model, num_steps: int, guidance_scale: float) -> list[float]:
    """|ours - diffusers| / |diffusers| per seed, with the pipeline's scheduler swapped for the adapter's DDIM."""
    ours = model.denoise(model.draw_noise(list(SEEDS)), model.encode_prompt(PROMPT))
    model.pipe.scheduler = ddim_scheduler_for(model.pipe.scheduler.config, model.scheduler.config.timestep_spacing)
    differences = []
    for row, seed in zip(ours, SEEDS):
        theirs = model.pipe(PROMPT, num_inference_steps=num_steps, guidance_scale=guidance_scale, height=model.height,
                            width=model.width, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent").images[0]
        differences.append(float((row - theirs).norm() / theirs.norm()))
    return differences


def tiny_model(family: str, num_steps: int, spacing: str | None, guidance_scale: float):
    return instantiate(compose_cfg([f"model={family}", f"model.num_steps={num_steps}", f"model.guidance_scale={guidance_scale}",
                                    f"model.timestep_spacing={'null' if spacing is None else spacing}",
                                    "model.dtype=float32", "model.device=cpu"]).model)


@pytest.mark.parametrize("family,num_steps,spacing,guidance_scale", shipped_samplers())
def test_every_shipped_sampler_reproduces_in_plain_diffusers(family, num_steps, spacing, guidance_scale):
    torch.set_num_threads(1)
    model = tiny_model(family, num_steps, spacing, guidance_scale)
    differences = relative_differences(model, num_steps, guidance_scale)
    assert max(differences) < 1e-5, differences


@pytest.mark.parametrize("spacing,num_steps", [("linspace", 10), ("trailing", 30)])
def test_spacings_where_ddim_step_skips_to_t_minus_1000_over_T_do_not_reproduce(spacing, num_steps):
    """Documented in docs/CONVENTIONS.md "Seeds": DDIMScheduler.step lands on t - 1000//T, not on the next timestep."""
    torch.set_num_threads(1)
    model = tiny_model("tiny_sd", num_steps, spacing, 5.0)
    timesteps = [int(t) for t in model.schedule.timesteps]
    assert any(t - 1000 // num_steps != t_next for t, t_next in zip(timesteps, timesteps[1:]))
    assert min(relative_differences(model, num_steps, 5.0)) > 1e-2


@pytest.mark.parametrize("adapter,kind", [(StableDiffusionXLModel, "sdxl"), (StableDiffusionModel, "sd")])
def test_guidance_distilled_unet_gets_the_pipelines_guidance_embedding(tmp_path, adapter, kind):
    """LCM-style UNets (time_cond_proj_dim set) take w - 1 as `timestep_cond` and no CFG batch, denoising and inverting."""
    torch.set_num_threads(1)
    builder = TinySDBuilder(kind=kind, time_cond_proj_dim=8)
    model = adapter.from_pretrained(str(tmp_path / kind), num_steps=4, guidance_scale=5.0, inversion_guidance_scale=2.0,
                                    dtype="float32", device="cpu", builder=builder)
    assert model.unet_calls_per_roundtrip == 2 * 4  # one pass per step: the embedding replaces the CFG batch
    cond = model.encode_prompt(PROMPT)
    latents = model.denoise(model.draw_noise([3]), cond)
    pipe_latents = {w: model.pipe(PROMPT, num_inference_steps=4, guidance_scale=w, generator=torch.Generator("cpu").manual_seed(3),
                                  output_type="latent").images for w in (5.0, 1.0)}
    assert float((latents - pipe_latents[5.0]).norm() / pipe_latents[5.0].norm()) < 1e-5
    assert float((pipe_latents[1.0] - pipe_latents[5.0]).norm() / pipe_latents[5.0].norm()) > 1e-3  # w does matter

    embedding = model.pipe.get_guidance_scale_embedding(torch.tensor([2.0 - 1.0]), embedding_dim=8)
    theirs = drive_inverse_scheduler(model, cond, latents, timestep_cond=embedding)
    without = drive_inverse_scheduler(model, cond, latents)
    ours = model.invert(latents, cond)
    assert float((ours - theirs).norm() / theirs.norm()) < 1e-4
    assert float((ours - without).norm() / without.norm()) > 1e-3
