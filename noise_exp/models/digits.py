"""A small class-conditional latent diffusion model trained on CPU on scikit-learn's 8x8 digits.

Every part is a real diffusers / transformers class, saved as a `StableDiffusionPipeline` folder and
loaded back by `StableDiffusionModel.from_pretrained` like any other model:

- images: the 8x8 digits upsampled to 16x16 RGB (`noise_exp.data.digits`), the `train` split only;
- tokenizer: the slice of OpenAI CLIP's BPE that spells the digit prompts (same segmentation, 528 tokens);
- text encoder: a tiny `CLIPTextModel`, random and frozen (the digit changes the states after its token);
- VAE: a small `AutoencoderKL` trained first (16x16x3 -> 4x4x4 latents), with SD's latent scaling;
- UNet: a `UNet2DConditionModel` trained for epsilon prediction on the VAE latents with 10% of the prompts
  dropped to "" (so classifier-free guidance works), weights averaged by EMA;
- scheduler: SD 1.x's `DDIMScheduler` (scaled-linear betas, leading spacing).

The scorers (`noise_exp/evaluators/digits.py`) are fitted on the disjoint `heldout` split. Training is deterministic
from `seed` for a given thread count.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from noise_exp.data.digits import (
    IMAGE_SIZE,
    NUM_CLASSES,
    digit_prompt,
    digits_to_pixels,
    load_digit_splits,
)
from noise_exp.models.loading import save_pipeline_atomically

log = logging.getLogger(__name__)

# --- tokenizer ----------------------------------------------------------------------------------------
PROMPT_WORDS = ("a", "handwritten", "digit", *map(str, range(NUM_CLASSES)))


def _bpe_merges_used(word: str, ranks: dict[tuple[str, str], int]) -> list[tuple[str, str]]:
    """The merges CLIP's BPE applies, in order, to one byte-encoded word."""
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    used = []
    while len(parts) > 1:
        pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
        best = min(pairs, key=lambda pair: ranks.get(pair, math.inf))
        if best not in ranks:
            break
        used.append(best)
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return used


def write_digit_tokenizer(out_dir: Path, words: Sequence[str] = PROMPT_WORDS) -> tuple[Path, Path]:
    """HF `vocab.json`/`merges.txt` holding CLIP's byte tokens plus only the merges that spell `words`.

    A subset of BPE merges kept in rank order segments those words exactly as the full CLIP tokenizer
    does (the lowest-ranked applicable merge is always in the subset); other text falls back to bytes.
    The text encoder's embedding table shrinks from 49,408 rows to ~540.
    """
    import gzip

    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as handle:
        merges = handle.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
    byte_encoder = bytes_to_unicode()
    needed: set[tuple[str, str]] = set()
    for word in words:
        needed.update(_bpe_merges_used("".join(byte_encoder[b] for b in word.encode("utf-8")), ranks))
    kept = sorted(needed, key=ranks.__getitem__)
    byte_tokens = list(byte_encoder.values())
    vocab = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in kept]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in kept) + "\n")
    return vocab_file, merges_file


# --- training -----------------------------------------------------------------------------------------
@dataclass
class DigitsTrainingConfig:
    """Everything that decides the weights. The defaults train in ~7 minutes on one thread (docs/small_model.md)."""

    seed: int = 0
    vae_steps: int = 1000
    vae_lr: float = 1e-3
    kl_weight: float = 1e-4
    unet_steps: int = 2500
    unet_lr: float = 1e-3
    batch_size: int = 32
    cond_dropout: float = 0.1
    ema_decay: float = 0.999
    text_hidden_size: int = 32
    max_length: int = 16  # tokenizer / text-encoder positions (the prompts take 7)
    unet_channels: tuple[int, ...] = (32, 64)
    vae_channels: tuple[int, ...] = (16, 32, 32)  # 16x16 images -> 4x4 latents (vae_scale_factor 4)
    latent_channels: int = 4


def sd1_ddim_scheduler():
    """SD 1.x's DDIM scheduler (scaled-linear betas, leading spacing), shared by the small trained models."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


def build_untrained(config: DigitsTrainingConfig, tokenizer_dir: Path):
    """The pipeline's components at initialisation (seeded), before any training."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(config.seed)
    vocab, merges = write_digit_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=config.max_length)
    vocab_size = len(tokenizer)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        vocab_size=vocab_size, max_position_embeddings=config.max_length, hidden_size=config.text_hidden_size,
        intermediate_size=64, num_attention_heads=4, num_hidden_layers=2, projection_dim=config.text_hidden_size,
        hidden_act="gelu", layer_norm_eps=1e-5))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=config.latent_channels,
                        block_out_channels=list(config.vae_channels), layers_per_block=1,
                        down_block_types=["DownEncoderBlock2D"] * len(config.vae_channels),
                        up_block_types=["UpDecoderBlock2D"] * len(config.vae_channels), norm_num_groups=8,
                        sample_size=IMAGE_SIZE)
    latent_size = IMAGE_SIZE // 2 ** (len(config.vae_channels) - 1)
    unet = UNet2DConditionModel(
        sample_size=latent_size, in_channels=config.latent_channels, out_channels=config.latent_channels,
        block_out_channels=tuple(config.unet_channels), layers_per_block=1, norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=config.text_hidden_size, attention_head_dim=8)
    return tokenizer, text_encoder, vae, unet


def train_vae(vae, pixels: torch.Tensor, config: DigitsTrainingConfig, generator: torch.Generator,
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


def train_unet(unet, posterior_mean: torch.Tensor, posterior_std: torch.Tensor, text_states: torch.Tensor,
               labels: torch.Tensor, config: DigitsTrainingConfig, generator: torch.Generator,
               report: Callable[[str], None]):
    """Epsilon prediction on scaled VAE latents (posterior samples of the train images, encoded once);
    label NUM_CLASSES (the "" prompt) replaces cond_dropout of the labels.

    Returns the EMA of the weights (loaded into a copy) and the loss every 100 steps.
    """
    scheduler = sd1_ddim_scheduler()
    alphas = scheduler.alphas_cumprod.to(torch.float32)
    ema = copy.deepcopy(unet).requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.unet_lr, weight_decay=0.0)

    curve = LossCurve()
    unet.train()
    for step in range(config.unet_steps):
        index = torch.randint(0, len(labels), (config.batch_size,), generator=generator)
        mean, std = posterior_mean[index], posterior_std[index]
        latents = mean + std * torch.randn(mean.shape, generator=generator)
        classes = labels[index].clone()
        classes[torch.rand(config.batch_size, generator=generator) < config.cond_dropout] = NUM_CLASSES
        loss = epsilon_loss(unet, latents, text_states[classes], alphas, generator)
        optimizer_step(optimizer, loss, unet.parameters(), warmup_cosine_lr(config.unet_lr, step, config.unet_steps))
        update_ema(ema, unet, step, config.ema_decay)
        if curve.add(float(loss.detach()), last=step == config.unet_steps - 1) is not None:
            report(f"unet step {step + 1}/{config.unet_steps} loss {curve.means[-1]:.4f}")
    ema.eval()
    return ema, curve.means


def train_pipeline(config: DigitsTrainingConfig | None = None, report: Callable[[str], None] | None = None):
    """Train VAE then UNet on the `train` split; returns (StableDiffusionPipeline, training record dict)."""
    from diffusers import StableDiffusionPipeline

    config = config or DigitsTrainingConfig()
    report = report or log.info
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer, text_encoder, vae, unet = build_untrained(config, Path(tok_dir))  # files are read at init
    text_encoder.requires_grad_(False).eval()
    split = load_digit_splits()["train"]
    pixels = digits_to_pixels(split.images)
    labels = torch.as_tensor(split.labels)
    generator = torch.Generator().manual_seed(config.seed)

    vae_losses = train_vae(vae, pixels, config, generator, report)
    vae.requires_grad_(False)
    with torch.no_grad():
        posterior = vae.encode(pixels).latent_dist
    latent_std = float(posterior.mean.std())  # SD's recipe: scale latents to unit variance
    vae.register_to_config(scaling_factor=1.0 / latent_std)
    vae_seconds = time.perf_counter() - start

    prompts = [digit_prompt(k) for k in range(NUM_CLASSES)] + [""]
    text_states = encode_prompts(tokenizer, text_encoder, prompts)
    unet_ema, unet_losses = train_unet(unet, posterior.mean / latent_std, posterior.std / latent_std, text_states,
                                       labels, config, generator, report)

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet_ema,
                                   scheduler=sd1_ddim_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    record = {"config": asdict(config), "train_images": int(len(pixels)), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "vae_seconds": round(vae_seconds, 1),
              "seconds": round(time.perf_counter() - start, 1), "latent_std": latent_std,
              "vae_losses": vae_losses, "unet_losses": unet_losses}
    return pipe, record


@dataclass
class DigitsPipelineBuilder:
    """The `builder` of `conf/model/small_digits.yaml`: trains the pipeline into a folder on first use."""

    seed: int = 0
    vae_steps: int = DigitsTrainingConfig.vae_steps
    unet_steps: int = DigitsTrainingConfig.unet_steps
    batch_size: int = DigitsTrainingConfig.batch_size

    def __call__(self, out_dir: Path) -> Path:
        log.warning("training the small digits model into %s (first use; a few minutes on CPU)", out_dir)
        config = DigitsTrainingConfig(seed=self.seed, vae_steps=self.vae_steps, unet_steps=self.unet_steps,
                                      batch_size=self.batch_size)
        pipe, record = train_pipeline(config)
        return save_pipeline(pipe, record, Path(out_dir))


def save_pipeline(pipe, record: dict, out_dir: Path) -> Path:
    """Save the trained pipeline atomically, with its training record beside it."""
    return save_pipeline_atomically(pipe, out_dir, {"training.json": json.dumps(record, indent=1) + "\n"})


def clear_for_training(out_dir: Path, force: bool) -> bool:
    """True when a training script should train into `out_dir`: it holds no model yet, or `force` removes it."""
    if (Path(out_dir) / "model_index.json").exists():
        if not force:
            print(f"{out_dir} already exists; --force retrains it")
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
    return hashlib.sha256((Path(folder) / "training.json").read_bytes()).hexdigest()[:12]
