"""The shapes world's learned, differentiable reward (`evaluator=shapes_reward`): p(caption matches image).

A caption-conditioned classifier trained on renders (`python -m noise_exp.training.shapes_reward`, weights
committed in `weights/shapes-reward/`). The caption is tokenised word by word (after `parse_caption`, so it is a
caption of the world) and read by a small bidirectional GRU; the image (resized to 32 px by area averaging, with
two coordinate channels) by a 4-layer CNN; the caption modulates the CNN's 8x8 features (FiLM), and a small head
reads the modulated map, flattened (so that where things are matters), into one logit.

It is the reward that reward-based methods optimise: `score_pixels` takes a [B, 3, H, W] tensor in [0, 1] and is
differentiable with respect to it. The exact judge (`evaluator=shapes_geneval`) stays held out for evaluation.
Training (`noise_exp.training.shapes_reward`) draws scenes, perturbs them like a model's output, and labels a
matching and a near-miss caption per image with the world's exact semantics (`noise_exp.data.shapes.check` on the
drawn objects), so no label is guessed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from noise_exp.config import PROJECT_ROOT
from noise_exp.data.shapes import COLORS, NUMBER_WORDS, PLURALS, RELATIONS, SHAPES, Target
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.preprocess import checked_pixels
from noise_exp.evaluators.shapes import as_rgb, parse_prompts
from noise_exp.evaluators.weights import cached

WEIGHTS = PROJECT_ROOT / "weights" / "shapes-reward"
VOCABULARY = ("<pad>", *NUMBER_WORDS.values(), *COLORS, *SHAPES, *PLURALS.values(), "and",
              *sorted({word for relation in RELATIONS for word in relation.split()}))
MAX_WORDS = 10


# --- the network --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RewardArchitecture:
    image_size: int = 32
    width: int = 64  # CNN channels (first layer: half)
    text_width: int = 64


def tokenize(targets: Sequence[Target]) -> torch.Tensor:
    """[B, MAX_WORDS] word ids of the targets' canonical captions (0 pads)."""
    index = {word: i for i, word in enumerate(VOCABULARY)}
    ids = torch.zeros(len(targets), MAX_WORDS, dtype=torch.long)
    for row, target in enumerate(targets):
        words = target.caption.split()
        ids[row, :len(words)] = torch.tensor([index[word] for word in words])
    return ids


class ShapesRewardNet(nn.Module):
    """logit(caption matches image) from pixels [B, 3, H, W] in [0, 1] and word ids [B, MAX_WORDS]."""

    def __init__(self, arch: RewardArchitecture = RewardArchitecture()):
        super().__init__()
        self.arch = arch
        w, t = arch.width, arch.text_width
        self.embed = nn.Embedding(len(VOCABULARY), t, padding_idx=0)
        self.position = nn.Embedding(MAX_WORDS, t)
        self.gru = nn.GRU(t, t, batch_first=True, bidirectional=True)
        self.text = nn.Linear(2 * t, t)
        def conv(inputs: int, outputs: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1), nn.ReLU()]

        self.encoder = nn.Sequential(*conv(5, w // 2), *conv(w // 2, w, 2), *conv(w, w, 2))
        self.film = nn.Linear(t, 2 * w)
        self.fused = nn.Sequential(*conv(w, w), *conv(w, w, 2), nn.Flatten())
        cells = (arch.image_size // 8) ** 2
        self.head = nn.Sequential(nn.Linear(w * cells + t, 128), nn.ReLU(), nn.Linear(128, 1))

    def encode_text(self, words: torch.Tensor) -> torch.Tensor:
        lengths = (words != 0).sum(1).clamp(min=1)
        hidden = self.embed(words) + self.position(torch.arange(words.shape[1]))
        packed = nn.utils.rnn.pack_padded_sequence(hidden, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)  # [2, B, t]: the forward and backward final states
        return torch.tanh(self.text(torch.cat([last[0], last[1]], dim=1)))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.arch.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="area")
        ramp = torch.linspace(-1, 1, size, dtype=pixels.dtype)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij")).expand(len(pixels), 2, size, size)
        return self.encoder(torch.cat([pixels * 2 - 1, coords], dim=1))

    def forward(self, pixels: torch.Tensor, words: torch.Tensor, image_index: torch.Tensor | None = None) -> torch.Tensor:
        """One logit per caption; caption i is about image `image_index[i]` (default: image i)."""
        features = self.encode_image(pixels)
        if image_index is not None:  # several captions per image: the image is encoded once
            features = features[image_index]
        text = self.encode_text(words)
        gamma, beta = self.film(text).chunk(2, dim=1)
        features = features * (1 + gamma[..., None, None]) + beta[..., None, None]
        return self.head(torch.cat([self.fused(F.relu(features)), text], dim=1)).squeeze(1)


def images_to_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images (any mode; one size) -> [B, 3, H, W] float32 in [0, 1]."""
    arrays = [np.asarray(as_rgb(image), dtype=np.float32) / 255.0 for image in images]
    if len({array.shape for array in arrays}) > 1:
        raise NoiseExpError(f"shapes_reward scores images of one size per call, got {sorted({a.shape[:2] for a in arrays})}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


# --- weights ------------------------------------------------------------------------------------------
def load_reward(folder: Path) -> ShapesRewardNet:
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise NoiseExpError(f"no shapes reward weights in {folder}: train them with `make train-shapes-reward` "
                            f"or set evaluator.shapes_reward.weights")
    net = ShapesRewardNet(RewardArchitecture(**json.loads((folder / "config.json").read_text())))
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    return net.eval().requires_grad_(False)


# --- the evaluator ------------------------------------------------------------------------------------
class ShapesReward(Evaluator):
    """p(caption matches image) from the learned reward; differentiable through `score_pixels`."""

    name = "shapes_reward"
    needs_prompts = True
    differentiable = True

    def __init__(self, weights: str | None = None, device: str | None = None, dtype: str = "float32",
                 batch_size: int = 256):
        super().__init__("cpu", "float32", batch_size)
        self.weights = Path(weights) if weights else WEIGHTS

    @property
    def net(self) -> ShapesRewardNet:
        return cached(("shapes_reward", str(self.weights.resolve())), lambda: load_reward(self.weights))

    def check_prompts(self, prompts: Sequence[str]) -> None:
        parse_prompts(prompts, len(prompts), self.name)

    def logits(self, pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """[B] match logits (on `pixels.device`) for pixels [B, 3, H, W] in [0, 1]; differentiable w.r.t. `pixels`."""
        batch = checked_pixels(pixels, self.name, self.device)
        words = tokenize(parse_prompts(prompts, len(batch), self.name))
        return self.net(batch, words).to(pixels.device)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        """[B] p(match) in (0, 1) on `pixels.device`; differentiable with respect to `pixels`."""
        return torch.sigmoid(self.logits(pixels, prompts))

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        parse_prompts(prompts, len(images), self.name)
        if not images:
            return torch.zeros(0, dtype=torch.float32)
        with torch.no_grad():
            return torch.cat([self.score_pixels(images_to_pixels(images[i:i + self.batch_size]),
                                                prompts[i:i + self.batch_size])
                              for i in range(0, len(images), self.batch_size)])


__all__ = ["RewardArchitecture", "ShapesReward", "ShapesRewardNet", "VOCABULARY", "images_to_pixels", "load_reward",
           "tokenize"]
