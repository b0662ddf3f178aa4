"""SV3D-U as diffusers components: the folder layout, the real model's configs, saving and loading.

diffusers has no SV3D pipeline, so a converted SV3D folder is four subfolders written with
`save_pretrained` (unet/, vae/, image_encoder/, scheduler/) plus a `model_index.json` naming their classes.
The real checkpoint is converted into this layout by `scripts/convert_sv3d.py`; the tiny test model is built
into the same layout from configs (`noise_exp.builders.tiny_sv3d`), and both load through
`SV3DComponents.from_pretrained`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from noise_exp.edm import SV3D_SCHEDULER_CONFIG

MODEL_INDEX = "model_index.json"

# sgm VideoUNet of SV3D-U in diffusers terms; only projection_class_embeddings_input_dim (256) differs from SVD-XT.
SV3D_U_UNET = dict(
    sample_size=72, in_channels=8, out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim=256, projection_class_embeddings_input_dim=256,
    layers_per_block=2, cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=(5, 10, 20, 20),
    num_frames=21)
# kl-f8 image autoencoder: the conditioner's encoder + quant_conv, and the first stage's decoder (no post_quant_conv).
SV3D_U_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=576, scaling_factor=0.18215, use_quant_conv=True, use_post_quant_conv=False, force_upcast=True)
# OpenCLIP ViT-H-14 (laion2b_s32b_b79k) visual tower with its 1024-d projection.
SV3D_U_IMAGE_ENCODER = dict(
    hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14,
    image_size=224, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5, num_channels=3)


@dataclass
class SV3DComponents:
    """The four parts of an SV3D model; the adapter (`noise_exp.models.sv3d.SV3DModel`) runs them."""

    unet: Any  # diffusers.UNetSpatioTemporalConditionModel
    vae: Any  # diffusers.AutoencoderKL
    image_encoder: Any  # transformers.CLIPVisionModelWithProjection
    scheduler_config: dict[str, Any]

    @classmethod
    def from_config(cls, unet: dict[str, Any], vae: dict[str, Any], image_encoder: dict[str, Any],
                    scheduler: dict[str, Any] | None = None) -> "SV3DComponents":
        """Random-weight components from config dicts (the tiny model, or the converter's empty shells)."""
        from diffusers import AutoencoderKL, UNetSpatioTemporalConditionModel
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        return cls(unet=UNetSpatioTemporalConditionModel(**unet), vae=AutoencoderKL(**vae),
                   image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**image_encoder)),
                   scheduler_config={**SV3D_SCHEDULER_CONFIG, **(scheduler or {})})

    @classmethod
    def from_pretrained(cls, path: str | Path, local_files_only: bool = True, **dtype_kwarg: Any) -> "SV3DComponents":
        """Load a converted (or tiny) folder; `dtype_kwarg` is diffusers' `dtype=`/`torch_dtype=`."""
        from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
        from transformers import CLIPVisionModelWithProjection

        path = Path(path)
        torch_dtype = next(iter(dtype_kwarg.values()), torch.float32)
        unet = UNetSpatioTemporalConditionModel.from_pretrained(path / "unet", local_files_only=local_files_only,
                                                                **dtype_kwarg)
        vae = AutoencoderKL.from_pretrained(path / "vae", local_files_only=local_files_only, **dtype_kwarg)
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            path / "image_encoder", local_files_only=local_files_only).to(torch_dtype)
        scheduler = EulerDiscreteScheduler.from_pretrained(path / "scheduler", local_files_only=local_files_only)
        return cls(unet, vae, image_encoder, dict(scheduler.config))

    def save_pretrained(self, path: str | Path) -> Path:
        from diffusers import EulerDiscreteScheduler

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(path / "unet")
        self.vae.save_pretrained(path / "vae")
        self.image_encoder.save_pretrained(path / "image_encoder")
        EulerDiscreteScheduler.from_config(self.scheduler_config).save_pretrained(path / "scheduler")
        index = {"_class_name": "SV3DComponents", "_noise_exp_loader": "noise_exp.models.sv3d_components",
                 "unet": ["diffusers", "UNetSpatioTemporalConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                 "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                 "scheduler": ["diffusers", "EulerDiscreteScheduler"]}
        (path / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
        return path

    def to(self, device: torch.device) -> "SV3DComponents":
        for module in (self.unet, self.vae, self.image_encoder):
            module.to(device).eval().requires_grad_(False)
        return self
