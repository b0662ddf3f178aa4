"""A tiny random-weight SV3D-shaped model (`model=tiny_sv3d`), in the layout `SV3DComponents` saves and loads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noise_exp.builders.base import PipelineBuilder
from noise_exp.models.sv3d_components import SV3D_U_IMAGE_ENCODER, SV3D_U_UNET, SV3D_U_VAE, SV3DComponents


@dataclass
class TinySV3DBuilder(PipelineBuilder):
    """A tiny random-weight SV3D-shaped model (same classes, 2 UNet levels, small VAE and ViT); deterministic."""

    sample_size: int = 16
    num_frames: int = 4
    hidden_size: int = 32

    def configs(self) -> dict[str, dict[str, Any]]:
        """The tiny unet / vae / image_encoder configs: SV3D-U's with fewer, narrower layers."""
        width = self.hidden_size
        unet = dict(SV3D_U_UNET, sample_size=self.sample_size, block_out_channels=(width, 2 * width),
                    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
                    addition_time_embed_dim=width, projection_class_embeddings_input_dim=width, layers_per_block=1,
                    cross_attention_dim=width, num_attention_heads=(2, 4), num_frames=self.num_frames)
        vae = dict(SV3D_U_VAE, block_out_channels=(width,) * 4, layers_per_block=1, sample_size=self.sample_size * 8)
        image_encoder = dict(SV3D_U_IMAGE_ENCODER, hidden_size=width, intermediate_size=2 * width, num_attention_heads=2,
                             num_hidden_layers=2, patch_size=8, image_size=32, projection_dim=width)
        return {"unet": unet, "vae": vae, "image_encoder": image_encoder}

    def build(self) -> tuple[SV3DComponents, dict[str, str]]:
        return SV3DComponents.from_config(**self.configs()), {}
