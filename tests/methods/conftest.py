"""The models the methods tests run: small_digits (trained, d = 64) and tiny_sd (random weights), built from conf/."""
from __future__ import annotations

from typing import Callable

import pytest
from noise_exp.config import compose_config
from noise_exp.runner import build as build_node


@pytest.fixture(scope="session")
def build_model() -> Callable[..., object]:
    """A model config with overrides, on the CPU, built as run.py builds it (user errors stay NoiseExpError)."""
    def build(name: str, *overrides: str):
        return build_node(compose_config([f"model={name}", "model.device=cpu", *overrides]).model, "model")

    return build


@pytest.fixture(scope="session")
def digits(build_model):
    return build_model("small_digits")


def with_settings(model, **settings):
    """The same loaded pipeline wrapped again with other adapter settings (no reload): with_settings(m, inversion=...)."""
    kept = {"name": model.name, "num_steps": model.num_steps, "guidance_scale": model.guidance_scale,
            "inversion_guidance_scale": model.inversion_guidance_scale, "height": model.height, "width": model.width,
            "inversion": model.inversion, "inversion_iterations": model.inversion_iterations}
    return type(model)(model.pipe, **{**kept, **settings})
