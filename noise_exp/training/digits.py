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

Train it with `python -m noise_exp.training.digits` (`make train-small`). The scorers
(`noise_exp/evaluators/digits.py`) are fitted on the disjoint `heldout` split. Training is deterministic from `seed`
for a given thread count.
"""
from __future__ import annotations

import copy
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from noise_exp.builders.base import PipelineBuilder, sd1_ddim_scheduler
from noise_exp.builders.tokenizers import word_tokenizer
from noise_exp.cli import ArgumentParser
from noise_exp.data.digits import (
    IMAGE_SIZE,
    NUM_CLASSES,
    digit_prompt,
    digits_to_pixels,
    load_digit_splits,
)
from noise_exp.errors import exit_on_user_error
from noise_exp.training.common import (LossCurve, check_counts, clear_for_training, configured_folder,
                                       encode_prompts, epsilon_loss, optimizer_step, record_files, save_trained,
                                       sd_pipeline, train_vae, update_ema, use_threads, warmup_cosine_lr)

log = logging.getLogger(__name__)

PROMPT_WORDS = ("a", "handwritten", "digit", *map(str, range(NUM_CLASSES)))


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


def build_untrained(config: DigitsTrainingConfig):
    """The pipeline's components at initialisation (seeded), before any training."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(config.seed)
    tokenizer = word_tokenizer(PROMPT_WORDS, config.max_length)
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
    config = config or DigitsTrainingConfig()
    report = report or log.info
    start = time.perf_counter()
    tokenizer, text_encoder, vae, unet = build_untrained(config)
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

    pipe = sd_pipeline(vae, text_encoder, tokenizer, unet_ema)
    record = {"config": asdict(config), "train_images": int(len(pixels)), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "vae_seconds": round(vae_seconds, 1),
              "seconds": round(time.perf_counter() - start, 1), "latent_std": latent_std,
              "vae_losses": vae_losses, "unet_losses": unet_losses}
    return pipe, record


@dataclass
class DigitsPipelineBuilder(PipelineBuilder):
    """The `builder` of `conf/model/small_digits.yaml`: trains the pipeline into a folder on first use."""

    vae_steps: int = DigitsTrainingConfig.vae_steps
    unet_steps: int = DigitsTrainingConfig.unet_steps
    batch_size: int = DigitsTrainingConfig.batch_size

    def build(self) -> tuple[Any, dict[str, str]]:
        log.warning("training the small digits model (first use; a few minutes on CPU)")
        config = DigitsTrainingConfig(seed=self.seed, vae_steps=self.vae_steps, unet_steps=self.unet_steps,
                                      batch_size=self.batch_size)
        pipe, record = train_pipeline(config)
        return pipe, record_files(record)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Train the small digits model (`make train-small`) into the folder `model=small_digits` loads.

    Deterministic from the seed for a given thread count; the folder also holds training.json (configuration,
    losses, seconds).
    """
    parser = ArgumentParser(prog="python -m noise_exp.training.digits", description=main.__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: model.pretrained)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the committed weights: 1; others change the float sums)")
    parser.add_argument("--vae-steps", type=int, default=DigitsTrainingConfig.vae_steps)
    parser.add_argument("--unet-steps", type=int, default=DigitsTrainingConfig.unet_steps)
    parser.add_argument("--force", action="store_true", help="retrain even if the folder exists")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    check_counts(vae_steps=args.vae_steps, unet_steps=args.unet_steps)
    out = args.out or configured_folder("small_digits")
    if not clear_for_training(out, args.force):
        return 0
    start = time.perf_counter()
    config = DigitsTrainingConfig(seed=args.seed, vae_steps=args.vae_steps, unet_steps=args.unet_steps)
    pipe, record = train_pipeline(config, report=lambda line: print(line, flush=True))
    save_trained(pipe, record, out, start, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
