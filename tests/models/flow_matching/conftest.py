"""Fixtures of the flow-matching tests: tiny SD3, tiny FLUX.1-dev-like and tiny FLUX.1-schnell-like models."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate

from noise_exp.models.flow_matching import FluxModel
from noise_exp.builders.tiny_flow import TinyFluxBuilder
from tests.conftest import compose_cfg

CPU_FLOAT32 = ["model.dtype=float32", "model.device=cpu"]


def with_settings(model, **changes):
    """A new adapter of the same class over the same loaded pipeline, with some constructor settings changed."""
    settings = dict(name=model.name, num_steps=model.num_steps, guidance_scale=model.guidance_scale,
                    inversion_guidance_scale=model.inversion_guidance_scale, height=model.height, width=model.width,
                    max_sequence_length=model.max_sequence_length)
    return type(model)(model.pipe, **{**settings, **changes})



@pytest.fixture(scope="session")
def tiny_sd3():
    return instantiate(compose_cfg(["model=tiny_sd3", *CPU_FLOAT32]).model)


@pytest.fixture(scope="session")
def tiny_flux():
    return instantiate(compose_cfg(["model=tiny_flux", *CPU_FLOAT32]).model)


@pytest.fixture(scope="session")
def schnell_folder(tmp_path_factory):
    """A tiny FLUX.1-schnell-like folder: no guidance embedding, static shift 1.0."""
    return TinyFluxBuilder(guidance_embeds=False, dynamic_shifting=False, shift=1.0)(
        tmp_path_factory.mktemp("flux") / "tiny-flux-schnell")


@pytest.fixture(scope="session")
def tiny_schnell(schnell_folder):
    return FluxModel.from_pretrained(str(schnell_folder), name="tiny_schnell", num_steps=4, guidance_scale=0.0,
                                     inversion_guidance_scale=None, height=128, width=128, max_sequence_length=32,
                                     dtype="float32", device="cpu")
