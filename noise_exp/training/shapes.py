"""Small text-to-image latent diffusion models of the shapes world, trained on CPU (issue 12, item 4).

Like the digits model (`noise_exp.training.digits`) every part is a real diffusers / transformers class, saved as a
plain `StableDiffusionPipeline` folder that `StableDiffusionModel.from_pretrained` loads like SD 1.5:

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
`python -m noise_exp.training.shapes --size 32|64 ...` trains one model; the committed models' stage table is a
study (`python -m noise_exp.studies train_shapes`, conf/study/train_shapes.yaml, `make train-shapes`).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from noise_exp.builders.base import PipelineBuilder, sd1_ddim_scheduler
from noise_exp.builders.tokenizers import word_tokenizer
from noise_exp.cli import ArgumentParser
from noise_exp.data.shapes import COLORS, NUMBER_WORDS, PLURALS, RELATIONS, SHAPES
from noise_exp.data.shapes_render import TrainingPair, training_pairs
from noise_exp.errors import NoiseExpError, exit_on_user_error
from noise_exp.training.common import (LossCurve, check_counts, clear_for_training, configured_folder, epsilon_loss,
                                       optimizer_step, record_files, save_trained, sd_pipeline, train_vae,
                                       update_ema, use_threads, warmup_cosine_lr)

log = logging.getLogger(__name__)

PROMPT_WORDS = tuple(dict.fromkeys([*NUMBER_WORDS.values(), *COLORS, *SHAPES, *PLURALS.values(), "and",
                                    *" ".join(RELATIONS).split()]))
SIZES = (32, 64)
MODEL_OF_SIZE = {32: "small_shapes", 64: "small_shapes_l"}


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


def build_untrained(config: ShapesTrainingConfig):
    """The pipeline's components at initialisation (seeded), before any training."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(config.seed)
    tokenizer = word_tokenizer(PROMPT_WORDS, config.max_length)
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
    config = config or ShapesTrainingConfig()
    report = report or log.info
    start = time.perf_counter()
    tokenizer, text_encoder, vae, unet = build_untrained(config)
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
    pipe = sd_pipeline(vae, text_ema, tokenizer, unet_ema)
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
    pipe = sd_pipeline(pipe.vae, text_encoder, pipe.tokenizer, unet, pipe.scheduler)
    record = {"config": asdict(config), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "seconds": round(time.perf_counter() - start, 1), "unet_steps_done": steps_done,
              "stopped_early": steps_done < config.steps_planned, "pairs_seen": steps_done * config.batch_size,
              "unet_losses": losses, "continued_from": json.loads((folder / "training.json").read_text())}
    return pipe, record


@dataclass
class ShapesPipelineBuilder(PipelineBuilder):
    """The `builder` of `conf/model/small_shapes*.yaml`: trains the pipeline into a folder on first use."""

    size: int = 32
    vae_steps: int | None = None  # None: the preset's
    unet_steps: int | None = None
    batch_size: int | None = None
    vae_images: int | None = None

    def build(self) -> tuple[Any, dict[str, str]]:
        log.warning("training the small shapes model (%d px; first use; tens of minutes on CPU)", self.size)
        config = preset(self.size, seed=self.seed, vae_steps=self.vae_steps, unet_steps=self.unet_steps,
                        batch_size=self.batch_size, vae_images=self.vae_images)
        pipe, record = train_pipeline(config)
        return pipe, record_files(record)


@dataclass
class Stage:
    """One `python -m noise_exp.training.shapes` call: one row of the stage table."""

    size: int
    out: Path | None = None  # None: the folder `model=small_shapes[_l]` loads
    seed: int = 0
    threads: int = 1
    steps: int | None = None  # UNet steps; None: the preset's
    vae_steps: int | None = None
    stop_after: int | None = None
    minutes: float | None = None
    lr: float | None = None
    batch_size: int | None = None
    continue_from: Path | None = None
    force: bool = False


def train_stage(stage: Stage) -> Path | None:
    """Train one stage into its folder (None when the folder exists and `force` is off)."""
    use_threads(stage.threads)
    check_counts(steps=stage.steps, vae_steps=stage.vae_steps, stop_after=stage.stop_after, batch_size=stage.batch_size)
    out = stage.out or configured_folder(MODEL_OF_SIZE[stage.size])
    if stage.continue_from and Path(stage.continue_from).resolve() == Path(out).resolve():
        raise NoiseExpError(f"--continue-from {stage.continue_from} is the output folder too: pass --out elsewhere, "
                            f"then move it into place")
    if not clear_for_training(out, stage.force):
        return None
    start = time.perf_counter()
    config = preset(stage.size, seed=stage.seed, unet_steps=stage.steps, vae_steps=stage.vae_steps,
                    unet_lr=stage.lr, batch_size=stage.batch_size, stop_after=stage.stop_after,
                    max_seconds=None if stage.minutes is None else 60 * stage.minutes)
    report = lambda line: print(line, flush=True)  # noqa: E731
    if stage.continue_from:
        pipe, record = continue_training(stage.continue_from, config, report)
    else:
        pipe, record = train_pipeline(config, report)
    return save_trained(pipe, record, out, start, stage.threads)


USAGE = """python -m noise_exp.training.shapes --size 32|64 [--out DIR] [--seed 0] [--threads 1] [--steps N]
           [--minutes M] [--force]
       python -m noise_exp.training.shapes --size 32|64 --continue-from DIR --out DIR2 --seed 1 --lr 5e-4 --steps N
           [--batch-size B] [--stop-after N]"""


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Train a small shapes-world model (`make train-shapes`) into the folder `model=small_shapes[_l]` loads.

    --size 32 is `model=small_shapes` (4x8x8 latents), --size 64 is `model=small_shapes_l` (4x16x16 latents).
    Training is deterministic from the seed for a given thread count; --minutes caps the UNet phase's wall clock
    (a run stopped by it is not reproducible, and its training.json says so: `stopped_early`).
    """
    parser = ArgumentParser(prog="python -m noise_exp.training.shapes", usage=USAGE,
                            description=main.__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, choices=SIZES, default=None, help="image side in pixels")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: model.pretrained)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    parser.add_argument("--steps", type=int, default=None, help="UNet steps (default: the preset's)")
    parser.add_argument("--vae-steps", type=int, default=None, help="VAE steps (default: the preset's)")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after N UNet steps of the --steps schedule (reproduces a run a time cap stopped)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock cap on the UNet phase")
    parser.add_argument("--lr", type=float, default=None, help="UNet + text-encoder peak learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="UNet batch size (default: the preset's)")
    parser.add_argument("--continue-from", type=Path, default=None,
                        help="a trained folder: more UNet + text-encoder steps from its weights (VAE kept)")
    parser.add_argument("--force", action="store_true", help="retrain even if the folder exists")
    args = vars(parser.parse_args(argv))
    if args["size"] is None:
        parser.error("--size is required (the committed stage table: python -m noise_exp.studies train_shapes)")
    train_stage(Stage(**args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
