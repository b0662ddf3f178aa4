"""ImageReward: our re-implemented forward pass on a tiny checkpoint in the official format, and equality with
the official `image-reward` 1.5 code (unpacked from its wheel, imported in this test only)."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.imagereward import ImageReward
from noise_exp.evaluators.weights import clear_cache
from tests.support import scorers
from tests.support.scorers import assert_valid_scores


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return scorers.tiny_imagereward(tiny_folder)


@pytest.fixture(scope="module")
def reward(tiny):
    return ImageReward(checkpoint=str(tiny.checkpoint), med_config=str(tiny.med_config), tokenizer=str(tiny.tokenizer),
                       vision_heads=tiny.vision["num_heads"], device="cpu", batch_size=2)


def test_scores_are_finite_deterministic_and_prompt_sensitive(reward, images, prompts):
    scores = reward.score(images, prompts)
    assert_valid_scores(scores, 3)
    assert torch.equal(scores, reward.score(images, prompts))
    assert reward.score(images, [prompts[0]] * 3).unique().numel() == 3
    assert not torch.allclose(scores, reward.score(images, prompts[::-1]))
    one_by_one = torch.cat([reward.score([i], [p]) for i, p in zip(images, prompts)])
    torch.testing.assert_close(scores, one_by_one, rtol=1e-5, atol=1e-5)


def test_checkpoint_with_wrong_keys_is_a_clear_error(tiny, tmp_path, images, prompts):
    state = torch.load(tiny.checkpoint, weights_only=True)
    del state["blip.text_encoder.encoder.layer.0.crossattention.self.key.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    evaluator = ImageReward(checkpoint=str(broken), med_config=str(tiny.med_config), tokenizer=str(tiny.tokenizer),
                            vision_heads=2, device="cpu")
    with pytest.raises(NoiseExpError, match="does not fit"):
        evaluator.score(images, prompts)


def test_missing_weights_offline_name_the_config_key(monkeypatch, tmp_path, images, prompts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    clear_cache()
    with pytest.raises(NoiseExpError, match=r"evaluator\.imagereward\.checkpoint"):
        ImageReward(device="cpu").score(images, prompts)


@pytest.fixture
def official_imagereward(tiny, tiny_folder, monkeypatch):
    """The official model class from the image-reward 1.5 wheel. Test-only adjustments, each outside the scoring
    arithmetic: the package __init__ files are skipped (they import ReFL/diffusers/datasets/OpenAI clip); a stub
    for fairscale's checkpoint_wrapper (used only with gradient checkpointing); transformers-5 shims for the
    helpers med.py imports from `transformers.modeling_utils` and for `init_weights`/`invert_attention_mask`/
    `get_head_mask`; `create_vit` builds the tiny ViT; `init_tokenizer` takes the [ENC] id without the attribute v5 removed; the tokenizer comes from ./bert-base-uncased."""
    root = scorers.reference_wheel("image_reward", tiny_folder / "wheels")
    if root is None:
        pytest.skip("image-reward wheel not found: run `make reference-wheels`")
    import transformers.modeling_utils as modeling_utils
    import transformers.pytorch_utils as pytorch_utils

    for name in ("ImageReward", "ImageReward.models"):
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")))]
        monkeypatch.setitem(sys.modules, name, package)
    for name in ("fairscale", "fairscale.nn", "fairscale.nn.checkpoint", "fairscale.nn.checkpoint.checkpoint_activations"):
        stub = types.ModuleType(name)
        stub.checkpoint_wrapper = lambda module, **kwargs: module
        monkeypatch.setitem(sys.modules, name, stub)

    def find_pruneable_heads_and_indices(heads, n_heads, head_size, already_pruned_heads):
        raise NotImplementedError("head pruning is not used by ImageReward scoring")

    monkeypatch.setattr(modeling_utils, "apply_chunking_to_forward", pytorch_utils.apply_chunking_to_forward,
                        raising=False)
    monkeypatch.setattr(modeling_utils, "prune_linear_layer", pytorch_utils.prune_linear_layer, raising=False)
    monkeypatch.setattr(modeling_utils, "find_pruneable_heads_and_indices", find_pruneable_heads_and_indices,
                        raising=False)
    import ImageReward.models.BLIP.blip_pretrain as blip_pretrain
    import ImageReward.models.BLIP.med as med
    from ImageReward.ImageReward import ImageReward as OfficialImageReward
    from ImageReward.models.BLIP.vit import VisionTransformer

    def init_weights(self):  # v5's init_weights re-enters post_init; med.BertModel calls it from __init__
        if not getattr(self, "_noise_exp_initialising", False):
            self._noise_exp_initialising = True
            self.post_init()

    def invert_attention_mask(self, mask):
        extended = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        return (1.0 - extended.to(self.dtype)) * torch.finfo(self.dtype).min

    def get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
        assert head_mask is None
        return [None] * num_hidden_layers

    monkeypatch.setattr(med.BertModel, "init_weights", init_weights)
    monkeypatch.setattr(med.BertModel, "invert_attention_mask", invert_attention_mask, raising=False)
    monkeypatch.setattr(med.BertModel, "get_head_mask", get_head_mask, raising=False)
    v = tiny.vision
    monkeypatch.setattr(blip_pretrain, "create_vit", lambda *args, **kwargs: (VisionTransformer(
        img_size=v["image_size"], patch_size=v["patch_size"], embed_dim=v["embed_dim"], depth=v["depth"],
        num_heads=v["num_heads"]), v["embed_dim"]))
    def init_tokenizer():  # the official lines; v5 lacks `additional_special_tokens_ids` for enc_token_id
        from transformers import BertTokenizer

        tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.convert_tokens_to_ids("[ENC]")
        return tokenizer

    monkeypatch.setattr(blip_pretrain, "init_tokenizer", init_tokenizer)
    monkeypatch.chdir(tiny_folder)  # BertTokenizer.from_pretrained('bert-base-uncased') finds ./bert-base-uncased
    model = OfficialImageReward(med_config=str(tiny.med_config), device="cpu")
    # the official loader: torch.load + load_state_dict(strict=False); check the keys it ignores
    result = model.load_state_dict(torch.load(tiny.checkpoint, weights_only=True), strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    yield model.eval()
    for name in [m for m in sys.modules if m.startswith("ImageReward")]:
        sys.modules.pop(name, None)


def test_equals_official_imagereward(official_imagereward, reward, images, prompts):
    rgb = [image.convert("RGB") for image in images]
    with torch.no_grad():
        for prompt in prompts:
            expected = torch.tensor([official_imagereward.score(prompt, image) for image in rgb])
            torch.testing.assert_close(reward.score(rgb, [prompt] * 3), expected, rtol=1e-5, atol=1e-5)
            _, ranked = official_imagereward.inference_rank(prompt, rgb)
            torch.testing.assert_close(reward.score(rgb, [prompt] * 3), torch.tensor(ranked), rtol=1e-5, atol=1e-5)
    assert expected.unique().numel() == 3
