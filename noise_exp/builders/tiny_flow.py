"""Tiny random-weight SD3 and FLUX.1 pipelines built from configs with the real diffusers/transformers classes.

Like `noise_exp.builders.tiny_sd`, they are built once into the model cache with `save_pretrained` and loaded back
through the same `from_pretrained` path as real weights, so everything runs offline on CPU. The T5 tokenizer is
made offline from a character-level Unigram vocabulary; the CLIP tokenizers carry OpenAI CLIP's real vocabulary.
Their images are noise: they prove the mechanics, not image quality.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from noise_exp.builders.base import PipelineBuilder
from noise_exp.builders.tiny_sd import CLIP_HIDDEN, tiny_clip_config
from noise_exp.builders.tokenizers import clip_tokenizers

LATENT_CHANNELS = 16  # SD3's and FLUX.1's VAEs have 16 latent channels
T5_SPECIAL = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5's SentencePiece model


def t5_vocabulary() -> list[tuple[str, float]]:
    """A character-level Unigram vocabulary (piece, log-probability): every printable ASCII character, alone and
    word-initial (`▁x`). Any English prompt tokenizes without unknowns; ids are deterministic."""
    characters = string.ascii_letters + string.digits + string.punctuation
    pieces = [(token, 0.0) for token in T5_SPECIAL] + [("▁", -2.0)]
    pieces += [("▁" + c, -3.0) for c in characters] + [(c, -4.0) for c in characters]
    return pieces


def tiny_t5_tokenizer(model_max_length: int = 512) -> Any:
    """A T5TokenizerFast (tokenizers-backed) over `t5_vocabulary`, appending `</s>` like T5's."""
    from transformers import T5TokenizerFast

    return T5TokenizerFast(vocab=t5_vocabulary(), extra_ids=0, model_max_length=model_max_length)


def tiny_t5_encoder(vocab_size: int, d_model: int) -> Any:
    """A 2-layer T5 v1.1-style encoder (gated GELU), the family of SD3's and FLUX's T5-XXL."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=16, d_ff=2 * d_model, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config)


def tiny_flow_vae(sample_size: int, scaling_factor: float, shift_factor: float) -> Any:
    """A 4-level (8x) AutoencoderKL with 16 latent channels, a latent scaling and shift, and no quant convs."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[32, 32, 32, 32], in_channels=3, out_channels=3,
                         latent_channels=LATENT_CHANNELS, layers_per_block=1,
                         down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                         norm_num_groups=32, sample_size=sample_size * 8, scaling_factor=scaling_factor,
                         shift_factor=shift_factor, use_quant_conv=False, use_post_quant_conv=False)


@dataclass
class TinySD3Builder(PipelineBuilder):
    """Builds a tiny StableDiffusion3Pipeline (two CLIP encoders with projection, T5, patch-2 transformer)."""

    sample_size: int = 16  # latent pixels; the transformer takes at most `pos_embed_max_size` patches a side
    pos_embed_max_size: int = 16
    shift: float = 3.0  # SD3 / SD3.5's static shift
    t5_dim: int = 96  # > 2 x CLIP_HIDDEN: SD3 pads the concatenated CLIP states up to the T5 width

    def build(self) -> tuple[Any, dict[str, str]]:
        from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
        from transformers import CLIPTextModelWithProjection

        tokenizer, tokenizer_2 = clip_tokenizers()
        tokenizer_3 = tiny_t5_tokenizer()
        transformer = SD3Transformer2DModel(
            sample_size=self.sample_size, patch_size=2, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
            num_layers=2, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=self.t5_dim,
            caption_projection_dim=32, pooled_projection_dim=2 * CLIP_HIDDEN,
            pos_embed_max_size=self.pos_embed_max_size)
        return StableDiffusion3Pipeline(
            transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=self.shift),
            vae=tiny_flow_vae(self.sample_size, scaling_factor=1.5305, shift_factor=0.0609),  # SD3's VAE
            text_encoder=CLIPTextModelWithProjection(tiny_clip_config()), tokenizer=tokenizer,
            text_encoder_2=CLIPTextModelWithProjection(tiny_clip_config()), tokenizer_2=tokenizer_2,
            text_encoder_3=tiny_t5_encoder(len(tokenizer_3), self.t5_dim), tokenizer_3=tokenizer_3), {}


@dataclass
class TinyFluxBuilder(PipelineBuilder):
    """Builds a tiny FluxPipeline: FLUX.1-dev-like (guidance embedding, dynamic shift) or, with
    `guidance_embeds=False, dynamic_shifting=False, shift=1.0`, FLUX.1-schnell-like."""

    guidance_embeds: bool = True
    dynamic_shifting: bool = True
    shift: float = 3.0
    t5_dim: int = 64

    def build(self) -> tuple[Any, dict[str, str]]:
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
        from transformers import CLIPTextModel

        tokenizer, _ = clip_tokenizers()
        tokenizer_2 = tiny_t5_tokenizer()
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=4 * LATENT_CHANNELS, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=self.t5_dim, pooled_projection_dim=CLIP_HIDDEN,
            guidance_embeds=self.guidance_embeds, axes_dims_rope=(4, 6, 6))
        scheduler = FlowMatchEulerDiscreteScheduler(shift=self.shift, use_dynamic_shifting=self.dynamic_shifting,
                                                    base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                    max_image_seq_len=4096)
        return FluxPipeline(
            transformer=transformer, scheduler=scheduler,
            vae=tiny_flow_vae(16, scaling_factor=0.3611, shift_factor=0.1159),  # FLUX.1's VAE
            text_encoder=CLIPTextModel(tiny_clip_config()), tokenizer=tokenizer,
            text_encoder_2=tiny_t5_encoder(len(tokenizer_2), self.t5_dim), tokenizer_2=tokenizer_2), {}
