"""ImageReward v1.0 (Xu et al., 2023): BLIP ViT-L/16 image encoder + BERT text encoder with cross-attention
to the image, then a linear MLP on the [CLS] feature, normalised by the training mean/std.

The official `image-reward` package pins timm 0.6 and fairscale, imports OpenAI `clip`, and fails to import on
transformers 5. This module re-implements its scoring forward pass (BLIP `VisionTransformer`, `med.BertModel`
in its 'multimodal' mode, `MLP`) in plain torch, with module names that match the official checkpoint, and
loads `ImageReward.pt` + `med_config.json` + the bert-base-uncased vocabulary. Equality with the official code
is checked in tests/evaluators/test_imagereward.py. See docs/evaluators.md.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import _openclip, preprocess
from noise_exp.evaluators.aes import AestheticMLP
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.weights import cached, read_checkpoint, resolve, resolve_dir

HUB_REPO = "THUDM/ImageReward"
REWARD_MEAN, REWARD_STD = 0.16717362830052426, 1.0333394966054072
MAX_TEXT_LENGTH = 35
# Keys of the official checkpoint that the scoring pass does not use.
UNUSED_KEYS = ("blip.vision_proj.", "blip.text_proj.", "blip.text_encoder.embeddings.position_ids")


# ---- BLIP vision transformer ----------------------------------------------------------------------------------

class _VisionAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) * (dim // self.heads) ** -0.5).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _VisionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _VisionAttention(dim, heads), _Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """BLIP's ViT (pre-norm blocks, LayerNorm eps 1e-6, final norm; returns all tokens)."""

    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, heads: int, hidden: int):
        super().__init__()
        self.image_size = image_size
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2 + 1, dim))
        self.blocks = nn.ModuleList([_VisionBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, pixels):
        x = self.patch_embed(pixels)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed[:, :x.shape[1] + 1]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# ---- BLIP med BERT (multimodal mode: self-attention, cross-attention to the image, feed-forward) -------------

class _BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, key_width: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key, self.value = nn.Linear(key_width, hidden), nn.Linear(key_width, hidden)

    def _split(self, x):
        return x.view(*x.shape[:-1], self.heads, -1).permute(0, 2, 1, 3)

    def forward(self, hidden_states, context, additive_mask=None):
        q, k, v = self._split(self.query(hidden_states)), self._split(self.key(context)), self._split(self.value(context))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if additive_mask is not None:
            scores = scores + additive_mask
        out = (scores.softmax(-1) @ v).permute(0, 2, 1, 3)
        return out.reshape(*out.shape[:2], -1)


class _BertResidual(nn.Module):
    """`dense` then LayerNorm(x + residual): med's BertSelfOutput / BertOutput."""

    def __init__(self, width_in: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(width_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, key_width: int, eps: float):
        super().__init__()
        self.self = _BertSelfAttention(hidden, heads, key_width)
        self.output = _BertResidual(hidden, hidden, eps)

    def forward(self, hidden_states, context, additive_mask=None):
        return self.output(self.self(hidden_states, context, additive_mask), hidden_states)


class _BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x):
        return F.gelu(self.dense(x))


class _BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, encoder_width: int, eps: float):
        super().__init__()
        self.attention = _BertAttention(hidden, heads, hidden, eps)
        self.crossattention = _BertAttention(hidden, heads, encoder_width, eps)
        self.intermediate = _BertIntermediate(hidden, intermediate)
        self.output = _BertResidual(intermediate, hidden, eps)

    def forward(self, x, text_mask, image_embeds):
        x = self.attention(x, x, text_mask)
        x = self.crossattention(x, image_embeds)  # every image token is attended (mask of ones)
        return self.output(self.intermediate(x), x)


class _BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, positions: int, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class _BertLayers(nn.Module):
    def __init__(self, layers: list[_BertLayer]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class TextEncoder(nn.Module):
    """med.BertModel without pooler, always in 'multimodal' mode (as ImageReward.score calls it)."""

    def __init__(self, config: dict, vocab: int, encoder_width: int):
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        if config.get("hidden_act", "gelu") != "gelu":
            raise NoiseExpError(f"med_config hidden_act={config['hidden_act']} is not supported (ImageReward uses gelu)")
        self.embeddings = _BertEmbeddings(vocab, hidden, config["max_position_embeddings"], eps)
        self.encoder = _BertLayers([_BertLayer(hidden, config["num_attention_heads"], config["intermediate_size"],
                                               encoder_width, eps) for _ in range(config["num_hidden_layers"])])

    def forward(self, input_ids, attention_mask, image_embeds):
        additive = (1.0 - attention_mask[:, None, None, :].to(image_embeds.dtype)) * -10000.0
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, additive, image_embeds)
        return x


class ImageRewardModel(nn.Module):
    def __init__(self, vision: VisionTransformer, text: TextEncoder, mlp: AestheticMLP):
        super().__init__()
        self.blip = nn.Module()
        self.blip.visual_encoder, self.blip.text_encoder = vision, text
        self.mlp = mlp

    def forward(self, pixels, input_ids, attention_mask):
        image_embeds = self.blip.visual_encoder(pixels)
        features = self.blip.text_encoder(input_ids, attention_mask, image_embeds)[:, 0, :]
        return ((self.mlp(features).float() - REWARD_MEAN) / REWARD_STD).squeeze(-1)


def build_from_state(state: dict[str, torch.Tensor], med_config: dict, vision_heads: int) -> ImageRewardModel:
    """Architecture read from the checkpoint's shapes (ViT width/depth/patch, vocab) and med_config (BERT)."""
    prefix = "blip.visual_encoder."
    try:
        pos_embed = state[prefix + "pos_embed"]
        patch = state[prefix + "patch_embed.proj.weight"].shape[-1]
        dim = pos_embed.shape[-1]
        depth = len({key.split(".")[3] for key in state if key.startswith(prefix + "blocks.")})
        hidden = state[prefix + "blocks.0.mlp.fc1.weight"].shape[0]
        vocab = state["blip.text_encoder.embeddings.word_embeddings.weight"].shape[0]
        mlp_in = state["mlp.layers.0.weight"].shape[1]
    except KeyError as error:
        raise NoiseExpError(f"not an ImageReward checkpoint: key {error} is missing") from None
    image_size = patch * math.isqrt(pos_embed.shape[1] - 1)
    vision = VisionTransformer(image_size, patch, dim, depth, vision_heads, hidden)
    model = ImageRewardModel(vision, TextEncoder(med_config, vocab, dim), AestheticMLP(mlp_in))
    kept = {key: value for key, value in state.items() if not key.startswith(UNUSED_KEYS)}
    result = model.load_state_dict(kept, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise NoiseExpError(f"ImageReward checkpoint does not fit: missing {result.missing_keys[:3]}, "
                            f"unexpected {result.unexpected_keys[:3]}")
    return model


def load_tokenizer(folder: Path):
    """bert-base-uncased plus BLIP's [DEC] (bos) and [ENC] tokens, as ImageReward's init_tokenizer."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


class ImageReward(Evaluator):
    name = "imagereward"
    needs_prompts = True
    differentiable = True

    def __init__(self, checkpoint: str | None = None, med_config: str | None = None,
                 tokenizer: str = "bert-base-uncased", vision_heads: int = 16, device: str | None = None,
                 dtype: str = "float32", batch_size: int = 16):
        super().__init__(device, dtype, batch_size)
        self.checkpoint, self.med_config, self.tokenizer_source = checkpoint, med_config, tokenizer
        self.vision_heads = int(vision_heads)

    def _load(self):
        checkpoint = resolve(self.checkpoint, weight="ImageReward v1.0 (ImageReward.pt)",
                             config_key="evaluator.imagereward.checkpoint", hub=(HUB_REPO, "ImageReward.pt"))
        med_config = resolve(self.med_config, weight="ImageReward med_config.json",
                             config_key="evaluator.imagereward.med_config", hub=(HUB_REPO, "med_config.json"))
        tokenizer_dir = resolve_dir(self.tokenizer_source, weight="the bert-base-uncased tokenizer",
                                    config_key="evaluator.imagereward.tokenizer")

        def load():
            try:
                med = json.loads(Path(med_config).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise NoiseExpError(f"cannot read {med_config}: not a JSON med_config ({error})") from None
            model = build_from_state(read_checkpoint(checkpoint), med, self.vision_heads)
            model = model.to(self.device, self.dtype).eval().requires_grad_(False)
            return model, load_tokenizer(tokenizer_dir)

        return cached(("imagereward", str(checkpoint), str(med_config), str(tokenizer_dir), str(self.device),
                       self.dtype, self.vision_heads), load)

    def _tokens(self, tokenizer, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_TEXT_LENGTH,
                           return_tensors="pt")
        return tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        model, tokenizer = self.load()
        size = model.blip.visual_encoder.image_size
        scores = []
        for start in range(0, len(images), self.batch_size):
            end = start + self.batch_size
            pixels = torch.stack([_openclip.resize_shortest_and_crop(image, size) for image in images[start:end]])
            scores.append(model(pixels.to(self.device, self.dtype), *self._tokens(tokenizer, prompts[start:end])))
        return torch.cat(scores).cpu().float() if scores else torch.zeros(0)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        batch = self._model_pixels(pixels, prompts)
        model, tokenizer = self.load()
        resized = preprocess.resize_shortest_and_crop(batch, model.blip.visual_encoder.image_size)
        normalised = preprocess.normalize(resized, _openclip.OPENAI_MEAN, _openclip.OPENAI_STD)
        return model(normalised.to(self.dtype), *self._tokens(tokenizer, prompts)).float().to(pixels.device)
