"""The training loop's shared pieces: schedules, EMA, the epsilon loss, VAE training, saving, and `training_id`.

The digits and shapes worlds (`noise_exp.training.digits`, `.shapes`) train the same kind of pipeline (a small
`AutoencoderKL`, a `UNet2DConditionModel` for epsilon prediction, SD 1.x's DDIM scheduler) from these.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

from noise_exp.builders.base import sd1_ddim_scheduler
from noise_exp.models.loading import save_pipeline_atomically
from noise_exp.params import integer_param

TRAINING_RECORD = "training.json"


class VAETraining(Protocol):
    """What `train_vae` reads from a world's training configuration."""

    vae_steps: int
    vae_lr: float
    kl_weight: float
    batch_size: int


def sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler=None):
    """A `StableDiffusionPipeline` of trained parts (SD 1.x's DDIM scheduler unless given), without safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler or sd1_ddim_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def train_vae(vae, pixels: torch.Tensor, config: VAETraining, generator: torch.Generator,
              report: Callable[[str], None]) -> list[float]:
    """Reconstruction MSE + kl_weight * KL; returns the loss every 100 steps."""
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.vae_lr)
    losses = []
    vae.train()
    for step in range(config.vae_steps):
        batch = pixels[torch.randint(0, len(pixels), (config.batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        loss = F.mse_loss(reconstruction, batch) + config.kl_weight * posterior.kl().mean() / batch[0].numel()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == config.vae_steps - 1:
            losses.append(float(loss.detach()))
            report(f"vae step {step}/{config.vae_steps} loss {losses[-1]:.4f}")
    vae.eval()
    return losses


def warmup_cosine_lr(peak: float, step: int, steps: int, warmup: int = 200) -> float:
    """The learning rate at `step`: linear warm-up over `warmup` steps, then cosine annealing to 0 at `steps`."""
    return peak * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """One EMA step of `model`'s weights into `ema`, with the usual warm-up of the decay."""
    decay = min(decay, (1 + step) / (10 + step))
    for averaged, current in zip(ema.parameters(), model.parameters()):
        averaged.lerp_(current, 1 - decay)


def epsilon_loss(unet, latents: torch.Tensor, text_states: torch.Tensor, alphas: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """DDPM's epsilon-prediction loss at uniformly drawn timesteps (alphas: the schedule's cumulative products)."""
    timesteps = torch.randint(0, len(alphas), (len(latents),), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    alpha = alphas[timesteps].view(-1, 1, 1, 1)
    noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
    prediction = unet(noisy, timesteps, encoder_hidden_states=text_states).sample
    return F.mse_loss(prediction, noise)


@dataclass
class LossCurve:
    """The mean training loss per window of `every` steps (a last, partial window included)."""

    every: int = 100
    means: list[float] = field(default_factory=list)
    _sum: float = 0.0
    _count: int = 0

    def add(self, loss: float, last: bool = False) -> float | None:
        """Adds one step's loss; returns the window's mean when this step closes a window."""
        self._sum += loss
        self._count += 1
        if self._count < self.every and not last:
            return None
        self.means.append(self._sum / self._count)
        self._sum, self._count = 0.0, 0
        return self.means[-1]


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters, lr: float) -> None:
    """Backpropagate `loss`, clip the gradient norm to 1 and step at learning rate `lr`."""
    parameters = list(parameters)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str]) -> torch.Tensor:
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids)[0]


def record_files(record: dict[str, Any]) -> dict[str, str]:
    """The training record as the file saved beside the weights."""
    return {TRAINING_RECORD: json.dumps(record, indent=1) + "\n"}


def save_pipeline(pipe, record: dict, out_dir: Path) -> Path:
    """Save the trained pipeline atomically, with its training record beside it."""
    return save_pipeline_atomically(pipe, out_dir, record_files(record))


def configured_folder(model: str) -> Path:
    """`model.pretrained` of conf/model/<model>.yaml (honours NOISE_EXP_MODEL_CACHE)."""
    from noise_exp.config import compose_config

    return Path(compose_config([f"model={model}"]).model.pretrained)


def clear_for_training(out_dir: Path, force: bool, marker: str = "model_index.json") -> bool:
    """True when a training script should train into `out_dir`: it holds no model yet (no `marker` file), or
    `force` removes it."""
    if (Path(out_dir) / marker).exists():
        if not force:
            print(f"{out_dir} already holds a trained model; --force retrains it")
            return False
        shutil.rmtree(out_dir)
    return True


def save_trained(pipe, record: dict, out_dir: Path, started: float, threads: int) -> Path:
    """`save_pipeline`, then one line with the training time and the folder's size."""
    save_pipeline(pipe, record, out_dir)
    size = sum(f.stat().st_size for f in Path(out_dir).rglob("*") if f.is_file())
    print(f"trained in {time.perf_counter() - started:.0f}s on {threads} threads -> {out_dir} ({size / 1e6:.2f} MB)")
    return Path(out_dir)


def training_id(folder: Path) -> str:
    """sha256(training.json)[:12]: names the trained weights a study used (the record changes with every retraining)."""
    return hashlib.sha256((Path(folder) / TRAINING_RECORD).read_bytes()).hexdigest()[:12]


def use_threads(threads: int) -> int:
    """Set torch's thread count for a training command (a one-line error for anything but a positive integer)."""
    torch.set_num_threads(integer_param("--threads", threads, 1))
    return threads


def check_counts(**counts: int | None) -> None:
    """Each given step / batch count a positive integer (None: the preset's), before any training starts."""
    for name, value in counts.items():
        if value is not None:
            integer_param(f"--{name.replace('_', '-')}", value, 1)
