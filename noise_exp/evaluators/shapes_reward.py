"""The shapes world's learned, differentiable reward (`evaluator=shapes_reward`): p(caption matches image).

A caption-conditioned classifier trained on renders (`scripts/train_shapes_reward.py`, weights committed in
`weights/shapes-reward/`). The caption is tokenised word by word (after `parse_caption`, so it is a caption of the
world) and read by a small bidirectional GRU; the image (resized to 32 px by area averaging, with two coordinate
channels) by a 4-layer CNN; the caption modulates the CNN's 8x8 features (FiLM), and a small head reads the
modulated map, flattened (so that where things are matters), into one logit.

It is the reward that reward-based methods optimise: `score_pixels` takes a [B, 3, H, W] tensor in [0, 1] and is
differentiable with respect to it. The exact judge (`evaluator=shapes_geneval`) stays held out for evaluation.
Training draws scenes, perturbs them like a model's output, and labels a matching and a near-miss caption per
image with the world's exact semantics (`noise_exp.data.shapes.check` on the drawn objects), so no label is
guessed.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from noise_exp.config import PROJECT_ROOT
from noise_exp.data.shapes import (COLORS, NUMBER_WORDS, PLURALS, RELATIONS, SHAPES, TAGS, Target, check,
                                   neighbours, relax, sample_target)
from noise_exp.data.shapes_render import MODEL_LIKE, Rendering, perturb, render, sample_renderings
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.preprocess import checked_pixels
from noise_exp.evaluators.shapes import as_rgb, judge, parse_prompts
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


# --- training -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RewardTrainingConfig:
    seed: int = 0
    steps: int = 1600  # ~10 min with 1 thread on a shared 2-core machine
    batch_size: int = 48  # images per step; each is scored with a matching and `negatives` mismatching captions
    negatives: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    perturb_max: float = 1.5  # training images are perturbed by MODEL_LIKE x U(0, perturb_max)
    clean_fraction: float = 0.2  # ... or left clean
    random_negative: float = 0.3  # a negative is a random caption (else a near miss: one edit away)
    eval_images: int = 1200  # held-out renders (seed + 10_000) for the ranking accuracy
    arch: RewardArchitecture = field(default_factory=RewardArchitecture)


def _negative(rendering: Rendering, caption: Target, rng: np.random.Generator, random_share: float) -> Target:
    """A caption the scene does not satisfy: a near miss of `caption`, or a random caption (a few draws)."""
    for _ in range(32):
        if rng.random() < random_share:
            candidate = sample_target(rng)
        else:
            options = neighbours(caption)
            candidate = options[int(rng.integers(len(options)))]
        if not check(rendering.objects, candidate).correct:
            return candidate
    raise RuntimeError(f"no mismatching caption found for {caption.caption!r}")


def training_batch(rng: np.random.Generator, config: RewardTrainingConfig,
                   size: int = 32) -> tuple[torch.Tensor, list[Target], torch.Tensor]:
    """(pixels [B, 3, size, size], B x (1 + negatives) captions and labels): image i first with a matching caption,
    then with `negatives` mismatching ones."""
    images, captions, labels = [], [], []
    for _ in range(config.batch_size):
        rendering = render(sample_target(rng), rng, size)
        if rng.random() >= config.clean_fraction:
            rendering = perturb(rendering, rng, MODEL_LIKE.scaled(rng.uniform(0, config.perturb_max)))
        positive = relax(rendering.target, rng)
        images.append(rendering.image)
        captions += [positive] + [_negative(rendering, positive, rng, config.random_negative)
                                  for _ in range(config.negatives)]
        labels += [1.0] + [0.0] * config.negatives
    return images_to_pixels(images), captions, torch.tensor(labels)


def train_reward(config: RewardTrainingConfig, report: Callable[[str], None] = print,
                 evaluate: bool = True) -> tuple[ShapesRewardNet, dict]:
    """Train from scratch; deterministic from `config.seed` for a thread count. Returns the net and its record."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = ShapesRewardNet(config.arch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=max(config.steps, 2),
                                                   pct_start=0.05)
    losses, start = [], time.perf_counter()
    for step in range(config.steps):
        pixels, captions, labels = training_batch(rng, config)
        pairs = torch.arange(len(pixels)).repeat_interleave(1 + config.negatives)
        loss = F.binary_cross_entropy_with_logits(net(pixels, tokenize(captions), pairs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == config.steps:
            report(f"step {step + 1}/{config.steps} loss {np.mean(losses[-100:]):.4f} "
                   f"({time.perf_counter() - start:.0f}s)")
    net.eval()
    record = {"config": asdict(config), "vocabulary": list(VOCABULARY), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "seconds": round(time.perf_counter() - start, 1),
              "losses": [round(float(np.mean(losses[i:i + 50])), 5) for i in range(0, len(losses), 50)]}
    if evaluate:
        record["heldout"] = {f"level_{level:g}": asdict(evaluate_reward(net, config.eval_images, config.seed + 10_000,
                                                                        level))
                             for level in (0.0, 1.0)}
    return net, record


# --- evaluation ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RewardEvaluation:
    """On fresh renders (tags balanced): how often the matching caption outscores a mismatching one, and how often
    the reward's decision (p > 0.5) agrees with the exact judge on a matching or near-miss caption."""

    images: int
    size: int
    perturbation: float  # multiple of MODEL_LIKE (0: clean)
    ranking_near_miss: float
    ranking_random: float
    ranking_near_miss_per_tag: dict[str, float]
    agreement_with_judge: float
    judge_accuracy: float  # the judge against the truth on the same image-caption pairs
    reward_accuracy: float  # the reward's decision against the truth


@torch.no_grad()
def evaluate_reward(net: ShapesRewardNet, images: int, seed: int, level: float = 1.0,
                    size: int = 32) -> RewardEvaluation:
    rng = np.random.default_rng(seed + 1)
    renderings = sample_renderings(images, seed, size, MODEL_LIKE.scaled(level) if level else None)
    positives = [r.target for r in renderings]
    near = [_negative(r, r.target, rng, 0.0) for r in renderings]
    distant = [_negative(r, r.target, rng, 1.0) for r in renderings]
    pixels = images_to_pixels([r.image for r in renderings])
    every = torch.arange(len(pixels)).repeat(3)
    scored = net(pixels, tokenize(positives + near + distant), every).split(len(pixels))
    logits = dict(zip(("positive", "near", "random"), scored))
    wins = (logits["positive"] > logits["near"]).numpy()
    tags = np.array([t.tag for t in positives])
    matching = rng.random(images) < 0.5  # ask about the matching caption for half the images, a near miss otherwise
    asked = [p if m else n for p, n, m in zip(positives, near, matching)]
    truth = np.array([check(r.objects, t).correct for r, t in zip(renderings, asked)])
    verdicts = np.array([judge(r.image, t).correct for r, t in zip(renderings, asked)])
    chosen = torch.where(torch.from_numpy(matching), logits["positive"], logits["near"])
    decisions = (chosen > 0).numpy()
    return RewardEvaluation(
        images, size, level, float(wins.mean()), float((logits["positive"] > logits["random"]).float().mean()),
        {tag: float(wins[tags == tag].mean()) for tag in TAGS}, float((decisions == verdicts).mean()),
        float((verdicts == truth).mean()), float((decisions == truth).mean()))


# --- weights ------------------------------------------------------------------------------------------
def save_reward(net: ShapesRewardNet, record: dict, folder: Path) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(asdict(net.arch), indent=1) + "\n")
    (folder / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder


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


__all__ = ["RewardArchitecture", "RewardEvaluation", "RewardTrainingConfig", "ShapesReward", "ShapesRewardNet",
           "VOCABULARY", "evaluate_reward", "images_to_pixels", "load_reward", "save_reward", "tokenize",
           "train_reward", "training_batch"]
