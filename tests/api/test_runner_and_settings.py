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
