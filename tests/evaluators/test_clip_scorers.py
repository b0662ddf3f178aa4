"""HPSv2, AES, PickScore and CLIP-S on tiny random-weight checkpoints in the official formats."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.aes import AES
from noise_exp.evaluators.clip_score import CLIPScore
from noise_exp.evaluators.hpsv2 import HPSv2
from noise_exp.evaluators.pickscore import PickScore
from noise_exp.evaluators.weights import clear_cache
from tests.support import scorers
from tests.support.scorers import assert_valid_scores


@pytest.fixture(scope="module")
def hps(tiny_folder):
    config, checkpoint = scorers.tiny_hps(tiny_folder)
    return HPSv2(checkpoint=str(checkpoint), arch=str(config), device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def aes(tiny_folder):
    config, clip_path, mlp_path = scorers.tiny_aes(tiny_folder)
    return AES(mlp_checkpoint=str(mlp_path), clip_checkpoint=str(clip_path), clip_arch=str(config), device="cpu",
               batch_size=2)


@pytest.fixture(scope="module")
def pickscore(tiny_folder):
    model_dir, processor_dir = scorers.tiny_pickscore(tiny_folder)
    return PickScore(model=str(model_dir), processor=str(processor_dir), device="cpu", batch_size=2)


@pytest.mark.parametrize("scorer", ["hps", "pickscore"])
def test_text_scorers_are_finite_deterministic_and_prompt_sensitive(scorer, request, images, prompts):
    evaluator = request.getfixturevalue(scorer)
    first = evaluator.score(images, prompts)
    assert_valid_scores(first, len(images))
    assert torch.equal(first, evaluator.score(images, prompts))
    same_prompt = evaluator.score(images, [prompts[0]] * len(images))
    assert same_prompt.unique().numel() == len(images), "different images must score differently"
    swapped = evaluator.score(images, prompts[::-1])
    assert not torch.allclose(first, swapped), "the score must respond to the prompt"
    one_by_one = torch.cat([evaluator.score([image], [prompt]) for image, prompt in zip(images, prompts)])
    torch.testing.assert_close(first, one_by_one, rtol=1e-5, atol=1e-5)


def test_hps_equals_the_definition_on_its_preprocessing(hps, images, prompts, tiny_folder):
    """score = 100 * cos(image, text) with hpsv2's longest-side-resize-and-pad transform."""
    import open_clip

    config, checkpoint = scorers.tiny_hps(tiny_folder)
    open_clip.add_model_config(config)
    model = open_clip.create_model(config.stem, pretrained=None)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    model.eval()
    tokenizer = open_clip.get_tokenizer(config.stem)
    image = images[0]  # 96x64 -> 224x149, padded with 37/38 black rows (in [0,1] space) before normalisation
    pixels = torch.nn.functional.interpolate(
        torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255, size=(149, 224),
        mode="bicubic", antialias=True, align_corners=False)
    padded = torch.zeros(1, 3, 224, 224)
    padded[:, :, 37:37 + 149] = pixels
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    with torch.no_grad():
        image_emb = model.encode_image((padded - mean) / std, normalize=True)
        text_emb = model.encode_text(tokenizer([prompts[0]]), normalize=True)
    expected = 100 * (image_emb * text_emb).sum()
    torch.testing.assert_close(hps.score([image], [prompts[0]])[0], expected, rtol=0, atol=2e-4)


def test_hps_scale_option(tiny_folder, hps, images, prompts):
    config, checkpoint = scorers.tiny_hps(tiny_folder)
    raw = HPSv2(checkpoint=str(checkpoint), arch=str(config), scale=1.0, device="cpu").score(images, prompts)
    torch.testing.assert_close(100 * raw, hps.score(images, prompts))
    assert raw.abs().max() <= 1.0


def test_pickscore_equals_clipmodel_forward(pickscore, tiny_folder, images, prompts):
    """The official recipe: processor per prompt, logit_scale.exp() * cos, here through CLIPModel.forward."""
    from transformers import CLIPModel

    model_dir, processor_dir = scorers.tiny_pickscore(tiny_folder)
    model = CLIPModel.from_pretrained(model_dir).eval()
    from noise_exp.evaluators.pickscore import load_processor

    processor = load_processor(processor_dir)
    expected = []
    with torch.no_grad():
        for image, prompt in zip(images, prompts):
            inputs = processor(text=[prompt], images=[image.convert("RGB")], return_tensors="pt", padding=True)
            expected.append(model(**inputs).logits_per_image[0, 0])
    torch.testing.assert_close(pickscore.score(images, prompts), torch.stack(expected), rtol=1e-5, atol=1e-5)


def test_pickscore_processor_uses_pil_backend(tiny_folder):
    from noise_exp.evaluators.pickscore import load_processor

    _, processor_dir = scorers.tiny_pickscore(tiny_folder)
    assert "Pil" in type(load_processor(processor_dir).image_processor).__name__


def test_aes_is_finite_deterministic_and_image_sensitive(aes, images):
    scores = aes.score(images)
    assert_valid_scores(scores, len(images))
    assert torch.equal(scores, aes.score(images))
    assert scores.unique().numel() == len(images)
    assert torch.equal(aes.score(images, prompts=["x"] * 3), scores), "AES ignores the prompt"


def test_aes_equals_open_clip_preprocess_and_official_head(aes, tiny_folder, images):
    """Reference: open_clip's own eval transform (OpenAI CLIP's) + the predictor's MLP on the normalised embedding."""
    import open_clip

    config, clip_path, mlp_path = scorers.tiny_aes(tiny_folder)
    open_clip.add_model_config(config)
    model = open_clip.create_model(config.stem, pretrained=None)
    preprocess = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                           std=open_clip.OPENAI_DATASET_STD, resize_mode="shortest",
                                           interpolation="bicubic")
    model.load_state_dict(torch.load(clip_path, weights_only=True))
    model.eval()
    state = torch.load(mlp_path, weights_only=True)
    head = torch.nn.Sequential(*[torch.nn.Linear(state[f"layers.{i}.weight"].shape[1],
                                                 state[f"layers.{i}.weight"].shape[0]) for i in (0, 2, 4, 6, 7)])
    head.load_state_dict({f"{j}.{kind}": state[f"layers.{i}.{kind}"]
                          for j, i in enumerate((0, 2, 4, 6, 7)) for kind in ("weight", "bias")})
    with torch.no_grad():
        embedding = model.encode_image(torch.stack([preprocess(image) for image in images]))
        expected = head(embedding / embedding.norm(dim=-1, keepdim=True)).squeeze(-1)
    torch.testing.assert_close(aes.score(images), expected, rtol=1e-5, atol=1e-5)


def test_clip_s_image_and_text_modes(tiny_folder, images, prompts):
    config, clip_path, _ = scorers.tiny_aes(tiny_folder)
    clip_s = CLIPScore(checkpoint=str(clip_path), arch=str(config), device="cpu")
    to_self = clip_s.score(images, references=images)
    torch.testing.assert_close(to_self, torch.ones(3), rtol=0, atol=1e-5)
    to_other = clip_s.score(images, references=images[1:] + images[:1])
    assert_valid_scores(to_other, 3)
    assert (to_other < 0.99999).all()
    text = clip_s.score(images, prompts=prompts)
    assert not torch.allclose(text, clip_s.score(images, prompts=prompts[::-1]))
    with pytest.raises(NoiseExpError):
        clip_s.score(images)


def test_models_are_cached_per_process(hps, images, prompts, tiny_folder):
    hps.score(images[:1], prompts[:1])
    config, checkpoint = scorers.tiny_hps(tiny_folder)
    another = HPSv2(checkpoint=str(checkpoint), arch=str(config), device="cpu")
    assert another.load()[0] is hps.load()[0]


def test_wrong_inputs_raise_one_line_errors(hps):
    with pytest.raises(NoiseExpError, match="one prompt per image"):
        hps.score([Image.new("RGB", (8, 8))], None)


def test_checkpoint_of_another_architecture_is_a_clear_error(tiny_folder, images, prompts):
    config, checkpoint = scorers.tiny_hps(tiny_folder)
    other = tiny_folder / "other" / "TinyCLIP-other.json"
    other.parent.mkdir(exist_ok=True)
    spec = json.loads(config.read_text())
    spec["embed_dim"] = 48
    other.write_text(json.dumps(spec))
    with pytest.raises(NoiseExpError, match="does not fit"):
        HPSv2(checkpoint=str(checkpoint), arch=str(other), device="cpu").score(images, prompts)


@pytest.mark.parametrize("make, key", [
    (lambda: HPSv2(device="cpu"), "evaluator.hpsv2.checkpoint"),
    (lambda: HPSv2(version="v2.1", device="cpu"), "evaluator.hpsv2.checkpoint"),
    (lambda: AES(device="cpu"), "evaluator.aes.mlp_checkpoint"),
    (lambda: AES(mlp_checkpoint=__file__, device="cpu"), "evaluator.aes.clip_checkpoint"),
    (lambda: PickScore(device="cpu"), "evaluator.pickscore.model"),
    (lambda: CLIPScore(device="cpu"), "evaluator.clip_s.checkpoint"),
])
def test_missing_weights_offline_name_the_config_key(make, key, monkeypatch, tmp_path, images, prompts):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "torch"))
    clear_cache()
    start = time.monotonic()
    with pytest.raises(NoiseExpError, match=key.replace(".", r"\.")) as error:
        make().score(images, prompts, references=images)
    assert time.monotonic() - start < 10
    assert "\n" not in str(error.value)


def test_local_path_that_does_not_exist_is_named(images, prompts):
    with pytest.raises(NoiseExpError, match=r"evaluator\.hpsv2\.checkpoint=/nonexistent/x\.pt does not exist"):
        HPSv2(checkpoint="/nonexistent/x.pt", device="cpu").score(images, prompts)
