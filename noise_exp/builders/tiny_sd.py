"""Tiny random-weight SD / SDXL pipelines built from configs with the real diffusers classes.

They exist so that everything runs offline on CPU: built once, written with `save_pretrained` and
loaded back through the same `from_pretrained` path as real weights. Their images are noise-like; they
prove the mechanics, not image quality.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noise_exp.builders.base import PipelineBuilder, sd1_ddim_scheduler
from noise_exp.builders.tokenizers import clip_tokenizers

CLIP_HIDDEN = 32


def tiny_clip_config(hidden_size: int = CLIP_HIDDEN) -> Any:
    """A 2-layer CLIP text encoder over OpenAI CLIP's vocabulary."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, vocab_size=49408,
                          max_position_embeddings=77, hidden_size=hidden_size, intermediate_size=37,
                          num_attention_heads=4, num_hidden_layers=2, projection_dim=hidden_size, hidden_act="gelu",
                          layer_norm_eps=1e-5)


@dataclass
class TinySDBuilder(PipelineBuilder):
    """Builds a tiny `kind` ('sdxl' or 'sd') pipeline into a folder; deterministic from `seed`."""

    kind: str = "sdxl"
    sample_size: int = 16
    hidden_size: int = CLIP_HIDDEN
    time_cond_proj_dim: int | None = None  # set: a guidance-distilled (LCM-style) UNet that embeds w instead of CFG

    def build(self) -> tuple[Any, dict[str, str]]:
        from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        tokenizer, tokenizer_2 = clip_tokenizers()
        text_config = tiny_clip_config(self.hidden_size)
        scheduler = sd1_ddim_scheduler()
        vae = AutoencoderKL(block_out_channels=[32, 64, 64, 64], in_channels=3, out_channels=3, latent_channels=4,
                            layers_per_block=1, down_block_types=["DownEncoderBlock2D"] * 4,
                            up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=32,
                            sample_size=self.sample_size * 8)
        unet_common = dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=self.sample_size,
                           in_channels=4, out_channels=4, norm_num_groups=32, time_cond_proj_dim=self.time_cond_proj_dim,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
        if self.kind == "sdxl":
            time_embed_dim = 8
            unet = UNet2DConditionModel(
                **unet_common, attention_head_dim=(2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 2),
                addition_embed_type="text_time", addition_time_embed_dim=time_embed_dim,
                projection_class_embeddings_input_dim=6 * time_embed_dim + self.hidden_size,
                cross_attention_dim=2 * self.hidden_size)
            return StableDiffusionXLPipeline(
                vae=vae, text_encoder=CLIPTextModel(text_config), text_encoder_2=CLIPTextModelWithProjection(text_config),
                tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler), {}
        if self.kind == "sd":
            unet = UNet2DConditionModel(**unet_common, cross_attention_dim=self.hidden_size)
            return StableDiffusionPipeline(
                vae=vae, text_encoder=CLIPTextModel(text_config), tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False), {}
        raise ValueError(f"unknown tiny pipeline kind {self.kind!r} (sdxl or sd)")
