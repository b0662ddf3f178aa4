"""Bad input to the flow-matching adapters stops with one line that says what to change."""
from __future__ import annotations

import shutil

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.runner import build
from tests.conftest import compose_cfg
from tests.models.flow_matching.conftest import CPU_FLOAT32, with_settings


def build_error(overrides: list[str]) -> str:
    with pytest.raises(NoiseExpError) as err:
        build(compose_cfg([*overrides, *CPU_FLOAT32]).model, "model")
    message = str(err.value)
    assert "\n" not in message
    return message


def adapter_error(model, **changes) -> str:
    with pytest.raises(NoiseExpError) as err:
        with_settings(model, **changes)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("key,value", [("guidance_scale", 3.5), ("inversion_guidance_scale", 2.0)])
def test_a_guidance_value_given_to_schnell(tiny_schnell, key, value):
    message = adapter_error(tiny_schnell, **{key: value})
    assert message == (f"tiny_schnell: this FLUX transformer has no guidance embedding (FLUX.1-schnell) and would ignore "
                       f"model.{key}={value}; use 0, 1 or null (unguided)")


@pytest.mark.parametrize("family", ["tiny_sd3", "tiny_flux"])
@pytest.mark.parametrize("key", ["guidance_scale", "inversion_guidance_scale"])
def test_a_negative_guidance_is_refused_as_for_sd(request, family, key):
    message = adapter_error(request.getfixturevalue(family), **{key: -2.0})
    assert message == f"model.{key} must be >= 0.0, got -2.0"


def test_flux_dev_needs_its_guidance_value(tiny_flux):
    assert "set model.guidance_scale (the model card's is 3.5)" in adapter_error(tiny_flux, guidance_scale=None)


def test_a_resolution_the_patching_cannot_take(tiny_sd3, tiny_flux):
    assert build_error(["model=tiny_flux", "model.height=120"]) == \
        "tiny_flux: model.height/width must be multiples of 16 (VAE factor 8 x 2x2 packing), got 120x128"
    assert adapter_error(tiny_sd3, width=136) == \
        "tiny_sd3: model.height/width must be multiples of 16 (VAE factor 8 x patch 2), got 128x136"


def test_a_resolution_beyond_sd3s_position_embedding(tiny_sd3):
    message = adapter_error(tiny_sd3, height=272, width=272)
    assert message == ("tiny_sd3: 272x272 is 17 patches a side but the transformer's position embedding holds 16 "
                       "(at most 256 px a side)")
    # the limit is the transformer's own: 17 patches a side fail in diffusers, 16 go through
    with pytest.raises(ValueError, match="cannot be greater than `pos_embed_max_size`"):
        tiny_sd3.transformer.pos_embed(torch.zeros(1, 16, 34, 34))
    assert tiny_sd3.transformer.pos_embed(torch.zeros(1, 16, 32, 32)).shape == (1, 256, 32)


@pytest.mark.parametrize("model,t5", [("tiny_sd3", "text_encoder_3"), ("tiny_flux", "text_encoder_2")])
def test_a_missing_t5_folder(tmp_path, tiny_sd3, tiny_flux, model, t5):  # the fixtures build the intact folders
    folder = tmp_path / model
    shutil.copytree(compose_cfg([f"model={model}"]).model.pretrained, folder)
    shutil.rmtree(folder / t5)
    message = build_error([f"model={model}", f"model.pretrained={folder}"])
    assert message.startswith(f"model folder {folder} lists {t5} in model_index.json but has no such folder")


def test_a_t5_sequence_longer_than_512(tiny_flux):
    assert adapter_error(tiny_flux, max_sequence_length=1024) == \
        "model.max_sequence_length must be in 1..512 (T5 tokens), got 1024"
