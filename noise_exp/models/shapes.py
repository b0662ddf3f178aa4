"""Small text-to-image latent diffusion models of the shapes world, trained on CPU (issue 12, item 4).

Like the digits model (`models/digits.py`) every part is a real diffusers / transformers class, saved as a plain
`StableDiffusionPipeline` folder that `StableDiffusionModel.from_pretrained` loads like SD 1.5:

- data: unlimited (image, caption) pairs streamed from `noise_exp.data.shapes_render.training_pairs(seed, size)`;
- tokenizer: the slice of OpenAI CLIP's BPE that spells the shapes grammar's 21 words exactly as CLIP does;
- text encoder: a small `CLIPTextModel` trained jointly with the UNet. The UNet cross-attends to every token
  state (nothing is pooled) and CLIP's causal attention plus position embeddings make each state depend on the
  words before it, so "a red circle left of a blue square" and "a blue square left of a red circle" differ;
- VAE: a small `AutoencoderKL` trained first on renders (factor 4: 32 px -> 4x8x8, 64 px -> 4x16x16 latents),
  with SD's latent scaling (1 / std of the latents);
- UNet: a `UNet2DConditionModel` for epsilon prediction, 10% of captions dropped to "" (classifier-free guidance),
  EMA weights of UNet and text encoder;
- scheduler: SD 1.x's `DDIMScheduler`.

Training is deterministic from `seed` for a given thread count, unless `max_seconds` stops it early (recorded).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from noise_exp.data.shapes import COLORS, NUMBER_WORDS, PLURALS, RELATIONS, SHAPES
from noise_exp.data.shapes_render import TrainingPair, training_pairs
from noise_exp.errors import NoiseExpError
from noise_exp.models.digits import (LossCurve, epsilon_loss, optimizer_step, save_pipeline, sd1_ddim_scheduler,
                                     train_vae, update_ema, warmup_cosine_lr, write_digit_tokenizer)

log = logging.getLogger(__name__)

PROMPT_WORDS = tuple(dict.fromkeys([*NUMBER_WORDS.values(), *COLORS, *SHAPES, *PLURALS.values(), "and",
                                    *" ".join(RELATIONS).split()]))
SIZES = (32, 64)


@dataclass
class ShapesTrainingConfig:
    """Everything that decides the weights of one shapes model (`PRESETS` holds the committed two)."""

    size: int = 32  # image side in pixels; latents are size / 4
    seed: int = 0
    vae_steps: int = 500
    vae_batch_size: int = 16
    vae_lr: float = 1e-3
    kl_weight: float = 1e-4
    vae_images: int = 4096  # renders the VAE is trained on (drawn once from the seed + 1 stream)
    unet_steps: int = 2400
    unet_lr: float = 1e-3
    batch_size: int = 32
    cond_dropout: float = 0.1
    ema_decay: float = 0.999
    text_hidden_size: int = 64
    text_layers: int = 2
    max_length: int = 16  # tokenizer / text-encoder positions (the longest caption takes 10)
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_cross_attention: tuple[bool, ...] = (True, True, True)  # per resolution level, highest first
    vae_channels: tuple[int, ...] = (16, 32, 64)  # three levels: vae_scale_factor 4
    latent_channels: int = 4
    max_seconds: float | None = None  # wall-clock cap on the UNet phase; stopping early breaks determinism
    stop_after: int | None = None  # stop after this many UNet steps of the `unet_steps` schedule (deterministic)

    @property
    def steps_planned(self) -> int:
        """The UNet steps this configuration runs unless a time cap stops it."""
        return min(self.unet_steps, self.stop_after or self.unet_steps)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise NoiseExpError(f"shapes model size must be one of {SIZES} (pixels), got {self.size}")
        if len(self.unet_cross_attention) != len(self.unet_channels):
            raise NoiseExpError(f"unet_cross_attention needs one flag per UNet level ({len(self.unet_channels)}), "
                                f"got {len(self.unet_cross_attention)}")


PRESETS: dict[int, ShapesTrainingConfig] = {
    32: ShapesTrainingConfig(size=32),
    # 16x16 latents: the top level convolves only (self- and cross-attention over 256 positions would triple the
    # step time); relations are resolved at 8x8 and 4x4
    64: ShapesTrainingConfig(size=64, vae_steps=400, vae_batch_size=8, unet_steps=1400, batch_size=16,
                             unet_cross_attention=(False, True, True)),
}


def preset(size: int, **overrides) -> ShapesTrainingConfig:
    """The committed configuration for `size` px, with `overrides` (None values ignored)."""
    if size not in PRESETS:
        raise NoiseExpError(f"shapes model size must be one of {SIZES} (pixels), got {size}")
    return dataclasses.replace(PRESETS[size], **{k: v for k, v in overrides.items() if v is not None})


def images_to_pixels(images: Sequence) -> torch.Tensor:
    """RGB PIL images -> [N, 3, H, W] in [-1, 1] (the inverse of `noise_exp.imaging.pixels_to_images`)."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def build_untrained(config: ShapesTrainingConfig, tokenizer_dir: Path):
    """The pipeline's components at initialisation (seeded), before any training."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(config.seed)
    vocab, merges = write_digit_tokenizer(tokenizer_dir, PROMPT_WORDS)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=config.max_length)
    width = config.text_hidden_size
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer), max_position_embeddings=config.max_length, hidden_size=width,
        intermediate_size=2 * width, num_attention_heads=4, num_hidden_layers=config.text_layers,
        projection_dim=width, hidden_act="gelu", layer_norm_eps=1e-5))
    levels = len(config.vae_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=config.latent_channels,
                        block_out_channels=list(config.vae_channels), layers_per_block=1,
                        down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels,
                        norm_num_groups=8, sample_size=config.size)
    attention = config.unet_cross_attention
    unet = UNet2DConditionModel(
        sample_size=config.size // 2 ** (levels - 1), in_channels=config.latent_channels,
        out_channels=config.latent_channels, block_out_channels=tuple(config.unet_channels), layers_per_block=1,
        norm_num_groups=16, cross_attention_dim=width, attention_head_dim=8,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)))
    return tokenizer, text_encoder, vae, unet


def _batches(pairs: Iterator[TrainingPair], batch_size: int) -> Iterator[list[TrainingPair]]:
    while True:
        yield list(itertools.islice(pairs, batch_size))


def train_denoiser(unet, text_encoder, tokenizer, vae, config: ShapesTrainingConfig, generator: torch.Generator,
                   report: Callable[[str], None]):
    """UNet and text encoder trained jointly for epsilon prediction on streamed pairs (VAE frozen).

    Returns the EMA copies of (unet, text_encoder), the mean loss per 100 steps and the steps done.
    """
    scheduler = sd1_ddim_scheduler()
    alphas = scheduler.alphas_cumprod.to(torch.float32)
    scale = vae.config.scaling_factor
    modules = torch.nn.ModuleList([unet, text_encoder])
    ema = copy.deepcopy(modules).requires_grad_(False)
    optimizer = torch.optim.AdamW(modules.parameters(), lr=config.unet_lr, weight_decay=0.0)
    batches = _batches(training_pairs(config.seed, config.size), config.batch_size)
    curve, start, done = LossCurve(), time.perf_counter(), 0
    modules.train()
    for step in range(config.unet_steps):
        if config.stop_after is not None and step >= config.stop_after:
            report(f"stopping after {step} of {config.unet_steps} steps (stop_after)")
            break
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
            report(f"time cap of {config.max_seconds:.0f}s reached after {step} of {config.unet_steps} steps")
            break
        batch = next(batches)
        with torch.no_grad():
            posterior = vae.encode(images_to_pixels([pair.image for pair in batch])).latent_dist
        latents = (posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)) * scale
        dropped = torch.rand(len(batch), generator=generator) < config.cond_dropout
        captions = ["" if drop else pair.caption for pair, drop in zip(batch, dropped.tolist())]
        ids = tokenizer(captions, padding="max_length", max_length=config.max_length, truncation=True,
                        return_tensors="pt").input_ids
        loss = epsilon_loss(unet, latents, text_encoder(ids)[0], alphas, generator)
        optimizer_step(optimizer, loss, modules.parameters(), warmup_cosine_lr(config.unet_lr, step, config.unet_steps))
        update_ema(ema, modules, step, config.ema_decay)
        done = step + 1
        if curve.add(float(loss.detach()), last=done == config.unet_steps) is not None:
            report(f"unet step {done}/{config.unet_steps} loss {curve.means[-1]:.4f} "
                   f"({time.perf_counter() - start:.0f}s)")
    ema.eval()
    return ema[0], ema[1], curve.means, done


def train_pipeline(config: ShapesTrainingConfig | None = None, report: Callable[[str], None] | None = None):
    """Train the VAE, then UNet + text encoder; returns (StableDiffusionPipeline, training record dict)."""
    from diffusers import StableDiffusionPipeline

    config = config or ShapesTrainingConfig()
    report = report or log.info
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer, text_encoder, vae, unet = build_untrained(config, Path(tok_dir))  # files are read at init
    generator = torch.Generator().manual_seed(config.seed)

    vae_pairs = itertools.islice(training_pairs(config.seed + 1, config.size), config.vae_images)
    pixels = images_to_pixels([pair.image for pair in vae_pairs])
    vae_losses = train_vae(vae, pixels, dataclasses.replace(config, batch_size=config.vae_batch_size), generator,
                           report)
    vae.requires_grad_(False)
    with torch.no_grad():
        latent_std = float(torch.cat([vae.encode(chunk).latent_dist.mean for chunk in pixels.split(256)]).std())
    vae.register_to_config(scaling_factor=1.0 / latent_std)  # SD's recipe: latents of unit variance
    with torch.no_grad():
        reconstruction = torch.cat([vae.decode(vae.encode(chunk).latent_dist.mean).sample
                                    for chunk in pixels[:512].split(256)])
    vae_mse = float(F.mse_loss(reconstruction.clamp(-1, 1), pixels[:512]))
    vae_seconds = time.perf_counter() - start

    unet_ema, text_ema, unet_losses, steps_done = train_denoiser(unet, text_encoder, tokenizer, vae, config,
                                                                 generator, report)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_ema, tokenizer=tokenizer, unet=unet_ema,
                                   scheduler=sd1_ddim_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    record = {"config": asdict(config), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "vae_seconds": round(vae_seconds, 1), "seconds": round(time.perf_counter() - start, 1),
              "unet_steps_done": steps_done, "stopped_early": steps_done < config.steps_planned,
              "pairs_seen": steps_done * config.batch_size, "latent_std": latent_std,
              "vae_reconstruction_mse": vae_mse, "vae_losses": vae_losses, "unet_losses": unet_losses}
    return pipe, record


def continue_training(folder: Path, config: ShapesTrainingConfig, report: Callable[[str], None] | None = None):
    """More UNet + text-encoder steps from a trained folder's (EMA) weights, with a fresh data stream and a new
    warm-up + cosine schedule from `config` (seed, unet_steps, unet_lr, batch_size); the VAE and tokenizer are kept.

    Returns (StableDiffusionPipeline, training record dict); the record nests the folder's own as `continued_from`.
    """
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        raise NoiseExpError(f"cannot continue training from {folder}: it is not a trained shapes pipeline folder")
    report = report or log.info
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    pipe.vae.requires_grad_(False)
    generator = torch.Generator().manual_seed(config.seed)
    unet, text_encoder, losses, steps_done = train_denoiser(pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.vae,
                                                            config, generator, report)
    pipe = StableDiffusionPipeline(vae=pipe.vae, text_encoder=text_encoder, tokenizer=pipe.tokenizer, unet=unet,
                                   scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    record = {"config": asdict(config), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "seconds": round(time.perf_counter() - start, 1), "unet_steps_done": steps_done,
              "stopped_early": steps_done < config.steps_planned, "pairs_seen": steps_done * config.batch_size,
              "unet_losses": losses, "continued_from": json.loads((folder / "training.json").read_text())}
    return pipe, record


@dataclass
class ShapesPipelineBuilder:
    """The `builder` of `conf/model/small_shapes*.yaml`: trains the pipeline into a folder on first use."""

    size: int = 32
    seed: int = 0
    vae_steps: int | None = None  # None: the preset's
    unet_steps: int | None = None
    batch_size: int | None = None
    vae_images: int | None = None

    def __call__(self, out_dir: Path) -> Path:
        log.warning("training the small shapes model (%d px) into %s (first use; tens of minutes on CPU)",
                    self.size, out_dir)
        config = preset(self.size, seed=self.seed, vae_steps=self.vae_steps, unet_steps=self.unet_steps,
                        batch_size=self.batch_size, vae_images=self.vae_images)
        pipe, record = train_pipeline(config)
        return save_pipeline(pipe, record, Path(out_dir))
