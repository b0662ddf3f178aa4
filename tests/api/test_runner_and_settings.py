"""`nx.select` is `python run.py method=select` on the same model and prompt; the user's pipeline settings (its own
scheduler, attention slicing, CPU-offload hooks) are what they were after a call."""
from __future__ import annotations

import csv

import pytest
import torch

import noise_exp as nx
from tests.api.conftest import FAMILIES, PROMPT, load_pipe, model_folder


def test_select_keeps_the_runners_seed_and_stability(pipes, tmp_path):
    from noise_exp.runner import run_experiment
    from tests.conftest import compose_cfg

    run_dir = tmp_path / "run"
    run_experiment(compose_cfg(["model=tiny_sdxl", f"model.pretrained={model_folder('sdxl')}", f"prompt={PROMPT}",
                                "method=select", "method.num_seeds=5", "method.batch_size=2"]), run_dir)
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    stable = next(row for row in rows if row["variant"] == "stable")
    choice = nx.select(pipes("sdxl"), PROMPT, num_seeds=5, batch_size=2, progress=False, **FAMILIES["sdxl"][3])
    assert choice.seed == int(stable["seed"])
    assert choice.stability == pytest.approx(float(stable["stability"]), abs=1e-7)
    scores = {int(row["seed"]): float(row["stability"]) for row in csv.DictReader((run_dir / "selection_scores.csv").open())}
    assert dict(zip(choice.candidates.seed, choice.candidates.stability)) == pytest.approx(scores, abs=1e-7)


def test_a_pipe_with_its_own_scheduler_slicing_and_offload_is_left_as_it_was():
    """An SD pipe carrying an Euler scheduler (init_noise_sigma != 1), attention slicing and model CPU offload.
    Offload runs here with device="cpu" (no accelerator on the test machine): its hooks are installed and kept, the
    move to an accelerator is not exercised."""
    from diffusers import EulerDiscreteScheduler

    pipe = load_pipe("sd")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.enable_attention_slicing(1)
    pipe.enable_model_cpu_offload(device="cpu")
    settings = FAMILIES["sd"][3]
    scheduler, config = pipe.scheduler, dict(pipe.scheduler.config)
    processors = {name: type(p) for name, p in pipe.unet.attn_processors.items()}
    hooks = {name: getattr(module, "_hf_hook", None) for name, module in pipe.components.items()}
    assert any(hooks.values())
    choice = nx.select(pipe, PROMPT, num_seeds=2, progress=False, **settings)
    assert pipe.scheduler is scheduler and dict(pipe.scheduler.config) == config
    assert {name: type(p) for name, p in pipe.unet.attn_processors.items()} == processors
    assert {name: getattr(module, "_hf_hook", None) for name, module in pipe.components.items()} == hooks
    assert float(pipe.scheduler.init_noise_sigma) > 1.0
    chosen = pipe(PROMPT, latents=choice.latents, output_type="np", **settings).images
    drawn = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(choice.seed), output_type="np", **settings).images
    assert (chosen == drawn).all()


def pipeline_state(pipe) -> dict:
    """What a call must leave as it was: the scheduler (object, config, timesteps), the progress bar settings, the
    execution device, and per torch component its dtype, device, train/eval mode, forward hooks, requires_grad and
    gradients (reward_opt back-propagates through the network and the VAE)."""
    scheduler = pipe.scheduler
    state = {"scheduler": (id(scheduler), dict(scheduler.config), torch.as_tensor(scheduler.timesteps).tolist(),
                           getattr(scheduler, "num_inference_steps", None)),
             "progress_bar": dict(pipe._progress_bar_config), "execution_device": pipe._execution_device}
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            parameters = list(module.parameters())
            state[name] = (module.dtype, module.device, module.training, len(module._forward_pre_hooks),
                           len(module._forward_hooks), [p.requires_grad for p in parameters],
                           sum(p.grad is not None for p in parameters))
    return state


def test_every_function_leaves_an_fp16_pipe_as_it_was_even_when_it_fails_midway():
    """An fp16 SDXL pipe (its VAE upcasts to decode: force_upcast) whose scheduler the user has set to 7 steps. After
    each call, whether it returns, raises a NoiseExpError from the verifier after decoding, or is interrupted by
    Ctrl-C in the callback, the pipe's state is what it was; the handed-over fp16 latents give the seed's image."""
    import numpy as np

    pipe = load_pipe("sdxl").to(dtype=torch.float16)
    assert pipe.vae.config.force_upcast
    pipe.scheduler.set_timesteps(7)
    settings = {**FAMILIES["sdxl"][3], "num_inference_steps": 1, "height": 64, "width": 64}
    before = pipeline_state(pipe)

    def interrupt(*heard):
        raise KeyboardInterrupt

    def raising(*inputs):
        raise RuntimeError("scorer down")

    def mean_pixel(pixels, prompts):
        return pixels.mean(dim=(1, 2, 3))

    quiet = {"progress": False, **settings}
    calls = [
        (lambda: nx.select(pipe, PROMPT, num_seeds=2, **quiet), None),
        (lambda: nx.stability(pipe, PROMPT, torch.randn(1, 4, 8, 8, dtype=torch.float16), **settings), None),
        (lambda: nx.optimize(pipe, PROMPT, seed=0, steps=1, **quiet), None),
        (lambda: nx.best_of_n(pipe, PROMPT, num_seeds=1, verifier=lambda images, prompts: [0.0], **quiet), None),
        (lambda: nx.reward_opt(pipe, PROMPT, seed=0, steps=1, verifier=mean_pixel, **quiet), None),
        (lambda: nx.best_of_n(pipe, PROMPT, num_seeds=1, verifier=raising, **quiet), nx.NoiseExpError),
        (lambda: nx.reward_opt(pipe, PROMPT, seed=0, steps=1, verifier=mean_pixel, callback=interrupt, **quiet),
         KeyboardInterrupt),
        (lambda: nx.select(pipe, PROMPT, num_seeds=2, callback=interrupt, **quiet), KeyboardInterrupt),
    ]
    for index, (call, raises) in enumerate(calls):
        if raises is None:
            result = call()
        else:
            with pytest.raises(raises):
                call()
        assert pipeline_state(pipe) == before, index
        if index == 0:
            choice = result
    assert choice.latents.dtype == torch.float16
    chosen = pipe(PROMPT, latents=choice.latents, output_type="np", **settings).images
    drawn = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(choice.seed), output_type="np", **settings).images
    np.testing.assert_array_equal(chosen, drawn)


def test_the_settings_reach_the_round_trip(pipes):
    """A setting left out is the pipeline's `__call__` default (SD: guidance 7.5); a given one is used (SD3: the
    T5 length changes the prompt encoding, so the stability)."""
    sd = pipes("sd")
    latents = nx.select(sd, PROMPT, num_seeds=1, progress=False, **FAMILIES["sd"][3]).latents
    steps = {"num_inference_steps": 2, "height": 128, "width": 128}
    default = nx.stability(sd, PROMPT, latents, **steps)
    assert default == nx.stability(sd, PROMPT, latents, guidance_scale=7.5, **steps)
    assert default != nx.stability(sd, PROMPT, latents, guidance_scale=1.0, **steps)
    sd3 = pipes("sd3")
    settings = {**FAMILIES["sd3"][3], "num_inference_steps": 2}
    latents = nx.select(sd3, PROMPT, num_seeds=1, progress=False, **settings).latents
    assert nx.stability(sd3, PROMPT, latents, **settings) != nx.stability(sd3, PROMPT, latents,
                                                                          **{**settings, "max_sequence_length": 16})


def test_an_lcm_style_unet_takes_its_guidance_as_an_embedding():
    """SDXL with a guidance-distilled UNet (time_cond_proj_dim set, as LCM / turbo-style distillations), in bfloat16:
    one pass per step (no CFG batch), the guidance reaching the UNet as `timestep_cond`, and the pipeline's own draw
    at 64 x 32 (so that height and width swapped fail)."""
    import numpy as np
    from diffusers import UNet2DConditionModel

    base = load_pipe("sdxl")
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**base.unet.config, "time_cond_proj_dim": 32})
    pipe = type(base)(**{**base.components, "unet": unet}).to(dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    settings = {"num_inference_steps": 2, "guidance_scale": 5.0, "height": 64, "width": 32}  # not square
    choice = nx.select(pipe, PROMPT, num_seeds=2, progress=False, **settings)
    assert choice.nfe == 2 * 2 * (1 + 1) and choice.latents.dtype == torch.bfloat16
    assert choice.latents.shape == (1, 4, 8, 4)
    assert nx.stability(pipe, PROMPT, choice.latents, **{**settings, "guidance_scale": 1.5}) != choice.stability
    chosen = pipe(PROMPT, latents=choice.latents, output_type="np", **settings).images
    drawn = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(choice.seed), output_type="np", **settings).images
    np.testing.assert_array_equal(chosen, drawn)
