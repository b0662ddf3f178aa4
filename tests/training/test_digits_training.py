"""Training the small digits model: the tokenizer slice, determinism, and the first-use builder path."""
from __future__ import annotations

import torch
from transformers import CLIPTokenizer

from noise_exp.data.digits import digit_prompt
from noise_exp.models import StableDiffusionModel
from noise_exp.builders.tokenizers import write_clip_tokenizer, write_digit_tokenizer
from noise_exp.training.digits import PROMPT_WORDS, DigitsPipelineBuilder, DigitsTrainingConfig, train_pipeline

QUICK = dict(vae_steps=2, unet_steps=2, batch_size=4)


def test_tokenizer_slice_spells_the_prompts_like_clip(tmp_path):
    full = CLIPTokenizer(*map(str, write_clip_tokenizer(tmp_path / "full")))
    small = CLIPTokenizer(*map(str, write_digit_tokenizer(tmp_path / "small", PROMPT_WORDS)))
    assert len(small) < 600
    for prompt in [digit_prompt(k) for k in range(10)] + ["", "A Handwritten Digit 3"]:
        assert small.tokenize(prompt) == full.tokenize(prompt)
    assert small.tokenize("zebra")  # other text still tokenizes (into smaller pieces)


def test_training_is_deterministic_from_the_seed(one_thread):
    first, record = train_pipeline(DigitsTrainingConfig(seed=3, **QUICK), report=lambda line: None)
    second, again = train_pipeline(DigitsTrainingConfig(seed=3, **QUICK), report=lambda line: None)
    other, _ = train_pipeline(DigitsTrainingConfig(seed=4, **QUICK), report=lambda line: None)
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert record["unet_losses"] == again["unet_losses"] and record["latent_std"] == again["latent_std"]
    assert not torch.equal(first.unet.conv_in.weight, other.unet.conv_in.weight)


def test_builder_trains_on_first_use_and_loads_like_any_pipeline(tmp_path, one_thread):
    folder = tmp_path / "small-digits"
    model = StableDiffusionModel.from_pretrained(str(folder), name="small_digits", num_steps=2, guidance_scale=3.0,
                                                 dtype="float32", device="cpu",
                                                 builder=DigitsPipelineBuilder(seed=0, **QUICK))
    assert (folder / "model_index.json").is_file() and (folder / "training.json").is_file()
    assert model.latent_shape == (4, 4, 4) and model.pipe.vae_scale_factor == 4
    assert not list(tmp_path.glob(".small-digits-*"))  # the temporary folder was renamed, nothing left over
    latents = model.denoise(model.draw_noise([0, 1]), model.encode_prompt(digit_prompt(5)))
    assert [image.size for image in model.decode(latents)] == [(16, 16), (16, 16)]
