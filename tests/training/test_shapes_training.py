"""Training the small shapes models: determinism, the tokenizer slice, the first-use builder path, bad sizes."""
from __future__ import annotations

import pytest
import torch
from transformers import CLIPTokenizer

from noise_exp.data.shapes import targets_of_tag
from noise_exp.errors import NoiseExpError
from noise_exp.models import StableDiffusionModel
from noise_exp.builders.tokenizers import write_clip_tokenizer, write_digit_tokenizer
from noise_exp.training.shapes import PROMPT_WORDS, ShapesPipelineBuilder, preset, train_pipeline

QUICK = dict(vae_steps=2, unet_steps=3, batch_size=4, vae_batch_size=4, vae_images=8)


def test_tokenizer_slice_spells_every_benchmark_caption_like_clip(tmp_path):
    full = CLIPTokenizer(*map(str, write_clip_tokenizer(tmp_path / "full")))
    small = CLIPTokenizer(*map(str, write_digit_tokenizer(tmp_path / "small", PROMPT_WORDS)))
    captions = [target.caption for tag in ("position", "counting", "color_attr") for target in targets_of_tag(tag)]
    assert len(captions) == 636 and len(small) < 600
    for caption in captions:
        assert small.tokenize(caption) == full.tokenize(caption)
        assert len(small.tokenize(caption)) + 2 <= preset(32).max_length


def test_training_is_deterministic_from_the_seed():
    first, record = train_pipeline(preset(32, seed=3, **QUICK), report=lambda line: None)
    second, again = train_pipeline(preset(32, seed=3, **QUICK), report=lambda line: None)
    other, _ = train_pipeline(preset(32, seed=4, **QUICK), report=lambda line: None)
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert record["unet_losses"] == again["unet_losses"] and record["latent_std"] == again["latent_std"]
    assert record["unet_steps_done"] == 3 and not record["stopped_early"] and record["pairs_seen"] == 12
    assert not torch.equal(first.unet.conv_in.weight, other.unet.conv_in.weight)
    # the text encoder is trained jointly: its EMA weights moved away from the seeded initialisation
    untrained, _ = train_pipeline(preset(32, seed=3, **{**QUICK, "unet_steps": 0}), report=lambda line: None)
    assert not torch.equal(first.text_encoder.get_input_embeddings().weight,
                           untrained.text_encoder.get_input_embeddings().weight)


@pytest.mark.parametrize("size, latent", [(32, (4, 8, 8)), (64, (4, 16, 16))])
def test_builder_trains_on_first_use_and_loads_like_any_pipeline(tmp_path, size, latent):
    folder = tmp_path / "small-shapes"
    quick = {k: QUICK[k] for k in ("vae_steps", "unet_steps", "batch_size", "vae_images")}
    model = StableDiffusionModel.from_pretrained(str(folder), name="small_shapes", num_steps=2, guidance_scale=5.0,
                                                 dtype="float32", device="cpu", height=size, width=size,
                                                 builder=ShapesPipelineBuilder(size=size, seed=0, **quick))
    assert (folder / "model_index.json").is_file() and (folder / "training.json").is_file()
    assert model.latent_shape == latent and model.pipe.vae_scale_factor == 4
    images = model.decode(model.denoise(model.draw_noise([0, 1]), model.encode_prompt("a red circle left of a "
                                                                                       "blue square")))
    assert [image.size for image in images] == [(size, size)] * 2


def test_a_size_without_a_preset_is_one_line():
    with pytest.raises(NoiseExpError, match="size must be one of"):
        preset(48)


def test_continued_training_is_deterministic_and_keeps_the_first_record(tmp_path):
    from noise_exp.training.common import save_pipeline
    from noise_exp.training.shapes import continue_training

    pipe, record = train_pipeline(preset(32, seed=0, **QUICK), report=lambda line: None)
    folder = save_pipeline(pipe, record, tmp_path / "stage1")
    more = preset(32, seed=1, **{**QUICK, "unet_steps": 2})
    first, again = (continue_training(folder, more, report=lambda line: None) for _ in range(2))
    a, b = first[0].unet.state_dict(), again[0].unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and first[1]["unet_losses"] == again[1]["unet_losses"]
    assert first[1]["continued_from"]["unet_losses"] == record["unet_losses"] and first[1]["unet_steps_done"] == 2
    assert not torch.equal(first[0].unet.conv_in.weight, pipe.unet.conv_in.weight)
    # 2 steps of a 3-step schedule: what a run stopped by its time cap after 2 steps did, repeatable
    _, stopped = continue_training(folder, preset(32, seed=1, **{**QUICK, "stop_after": 2}), report=lambda line: None)
    assert stopped["unet_steps_done"] == 2 and not stopped["stopped_early"] and stopped["config"]["unet_steps"] == 3
    with pytest.raises(NoiseExpError, match="cannot continue training"):
        continue_training(tmp_path / "missing", more)
