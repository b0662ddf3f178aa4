"""Pipelines built the way a user builds them: a diffusers class's `from_pretrained` on a model folder (the tiny
random-weight folders the project's builders write on first use), nothing from the project's model configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT

PROMPT = "a red circle left of a blue square"
SIZE = {"height": 128, "width": 128}
# family -> (diffusers pipeline class, folder, builder, pipe(...) settings)
FAMILIES = {
    "sd": ("StableDiffusionPipeline", "tiny-sd", ("noise_exp.builders.tiny_sd", "TinySDBuilder", {"kind": "sd"}),
           {"num_inference_steps": 4, "guidance_scale": 5.0, **SIZE}),
    "sdxl": ("StableDiffusionXLPipeline", "tiny-sdxl", ("noise_exp.builders.tiny_sd", "TinySDBuilder", {"kind": "sdxl"}),
             {"num_inference_steps": 4, "guidance_scale": 5.0, **SIZE}),
    "sd3": ("StableDiffusion3Pipeline", "tiny-sd3", ("noise_exp.builders.tiny_flow", "TinySD3Builder", {}),
            {"num_inference_steps": 4, "guidance_scale": 5.0, "max_sequence_length": 32, **SIZE}),
    "flux": ("FluxPipeline", "tiny-flux", ("noise_exp.builders.tiny_flow", "TinyFluxBuilder", {}),
             {"num_inference_steps": 4, "guidance_scale": 3.5, "max_sequence_length": 32, **SIZE}),
}


def model_folder(family: str) -> Path:
    """The tiny model folder of a family in the model cache, written by the project's builder if missing."""
    from importlib import import_module

    _, name, (module, builder, options) = FAMILIES[family][:3]
    folder = Path(os.environ.get("NOISE_EXP_MODEL_CACHE", ROOT / ".cache" / "models")) / name
    if not (folder / "model_index.json").is_file():
        getattr(import_module(module), builder)(**options)(folder)
    return folder


def load_pipe(family: str):
    import diffusers

    pipe = getattr(diffusers, FAMILIES[family][0]).from_pretrained(str(model_folder(family)))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def pipes():
    """Each family's pipeline, loaded once per session on first use."""
    loaded = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = load_pipe(family)
        return loaded[family]

    return get
