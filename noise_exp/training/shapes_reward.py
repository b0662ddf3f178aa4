"""Training the shapes world's learned reward (`make train-shapes-reward`) into weights/shapes-reward/.

The network and its evaluator live in `noise_exp.evaluators.shapes_reward`. Training draws scenes, perturbs them
like a model's output, and labels a matching and a near-miss caption per image with the world's exact semantics
(`noise_exp.data.shapes.check` on the drawn objects), so no label is guessed. Deterministic from the seed for a given
thread count. The folder gets model.safetensors, config.json and training.json (configuration, losses, seconds, and
the held-out ranking accuracy and agreement with the judge on fresh clean and model-like renders).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from noise_exp.cli import ArgumentParser
from noise_exp.data.shapes import TAGS, Target, check, neighbours, relax, sample_target
from noise_exp.data.shapes_render import MODEL_LIKE, Rendering, perturb, render, sample_renderings
from noise_exp.errors import exit_on_user_error
from noise_exp.evaluators.shapes import judge
from noise_exp.evaluators.shapes_reward import (VOCABULARY, WEIGHTS, RewardArchitecture, ShapesRewardNet,
                                                images_to_pixels, tokenize)
from noise_exp.files import atomic_write_bytes
from noise_exp.training.common import check_counts, clear_for_training, record_files, use_threads


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
    """Each file written atomically, model.safetensors last: its presence means the folder is complete."""
    from safetensors.torch import save

    texts = {"config.json": json.dumps(asdict(net.arch), indent=1) + "\n", **record_files(record)}
    for name, text in texts.items():
        atomic_write_bytes(folder / name, text.encode())
    atomic_write_bytes(folder / "model.safetensors", save({k: v.contiguous() for k, v in net.state_dict().items()}))
    return folder


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Train the shapes world's learned reward (`make train-shapes-reward`) into weights/shapes-reward/."""
    parser = ArgumentParser(prog="python -m noise_exp.training.shapes_reward", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--seed", type=int, default=RewardTrainingConfig.seed)
    parser.add_argument("--steps", type=int, default=RewardTrainingConfig.steps)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--force", action="store_true", help="retrain even if the folder holds weights")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    check_counts(steps=args.steps)
    if not clear_for_training(args.out, args.force, marker="model.safetensors"):
        return 0
    start = time.perf_counter()
    net, record = train_reward(RewardTrainingConfig(seed=args.seed, steps=args.steps),
                               report=lambda line: print(line, flush=True))
    save_reward(net, record, args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(json.dumps(record["heldout"], indent=1))
    print(f"trained in {record['seconds']:.0f}s ({time.perf_counter() - start:.0f}s with evaluation) on "
          f"{args.threads} thread(s) -> {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
