"""Stability's SV3D checkpoint (`sv3d_u.safetensors`, sgm layout) -> diffusers components (docs/sv3d.md).

The checkpoint holds every part under one prefix each:

| prefix | part | diffusers target |
|---|---|---|
| `model.diffusion_model.` | sgm VideoUNet | `UNetSpatioTemporalConditionModel` (unet/) |
| `conditioner.embedders.1.encoder.` | legacy KL autoencoder; its encoder + quant_conv are used | `AutoencoderKL` encoder (vae/) |
| `first_stage_model.decoder.` | the image decoder (no post_quant_conv) | `AutoencoderKL` decoder (vae/) |
| `conditioner.embedders.0.open_clip.model.visual.` | OpenCLIP ViT-H-14 visual tower | `CLIPVisionModelWithProjection` (image_encoder/) |

The UNet keys go through diffusers' LDM UNet conversion (the same as SVD's) and then get SVD's video names:
a VideoResBlock's spatial part becomes `spatial_res_block`, its `time_stack` `temporal_res_block`; a video
transformer's `time_stack` becomes `temporal_transformer_blocks` and `time_pos_embed.{0,2}` `linear_{1,2}`.
The VAE keys go through diffusers' LDM VAE conversion. Every converted part is loaded with strict key
checking, so a key this mapping misses is an error, not a silently random weight.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.models.loading import save_pipeline_atomically

UNET_PREFIX = "model.diffusion_model."
VAE_ENCODER_PREFIX = "conditioner.embedders.1.encoder."
VAE_DECODER_PREFIX = "first_stage_model.decoder."
CLIP_VISUAL_PREFIX = "conditioner.embedders.0.open_clip.model.visual."

StateDict = dict[str, torch.Tensor]


def with_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """The entries under `prefix`, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _video_names(key: str) -> str:
    """diffusers' 2D UNet names (after the LDM conversion) -> the spatio-temporal UNet's names."""
    key = re.sub(r"(resnets\.\d+)\.time_stack\.", r"\1.temporal_res_block.", key)
    key = re.sub(r"(resnets\.\d+)\.(?!temporal_res_block\.|time_mixer\.)", r"\1.spatial_res_block.", key)
    key = re.sub(r"(attentions\.\d+)\.time_stack\.", r"\1.temporal_transformer_blocks.", key)
    key = re.sub(r"time_pos_embed\.0\.", "time_pos_embed.linear_1.", key)
    return re.sub(r"time_pos_embed\.2\.", "time_pos_embed.linear_2.", key)


def convert_unet(state: Mapping[str, torch.Tensor], layers_per_block: int) -> StateDict:
    """sgm VideoUNet (`model.diffusion_model.*`) -> UNetSpatioTemporalConditionModel state dict."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet_state = {key: value for key, value in state.items() if key.startswith(UNET_PREFIX)}
    if not unet_state:
        raise NoiseExpError(f"the checkpoint has no {UNET_PREFIX}* keys: not an SV3D/SVD checkpoint")
    config = {"layers_per_block": layers_per_block, "addition_embed_type": "text_time"}
    converted = convert_ldm_unet_checkpoint(unet_state, config)
    return {_video_names(key): value for key, value in converted.items()}


def convert_vae(state: Mapping[str, torch.Tensor], vae_config: Mapping[str, Any]) -> StateDict:
    """Encoder + quant_conv of the conditioner's autoencoder and the first stage's decoder -> AutoencoderKL."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    encoder = with_prefix(state, VAE_ENCODER_PREFIX)
    decoder = with_prefix(state, VAE_DECODER_PREFIX)
    if not encoder or not decoder:
        raise NoiseExpError(f"the checkpoint lacks {VAE_ENCODER_PREFIX}* or {VAE_DECODER_PREFIX}* keys")
    ldm = {f"first_stage_model.{key}": value for key, value in encoder.items() if key.startswith(("encoder.", "quant_conv."))}
    ldm.update({f"first_stage_model.decoder.{key}": value for key, value in decoder.items()})
    return convert_ldm_vae_checkpoint(ldm, dict(vae_config))


def convert_open_clip_visual(state: Mapping[str, torch.Tensor]) -> StateDict:
    """An OpenCLIP ViT visual tower (`...open_clip.model.visual.*`) -> CLIPVisionModelWithProjection."""
    visual = with_prefix(state, CLIP_VISUAL_PREFIX)
    if not visual:
        raise NoiseExpError(f"the checkpoint has no {CLIP_VISUAL_PREFIX}* keys (the OpenCLIP image encoder)")
    out: StateDict = {
        "vision_model.embeddings.patch_embedding.weight": visual["conv1.weight"],
        "vision_model.embeddings.class_embedding": visual["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": visual["positional_embedding"],
        "visual_projection.weight": visual["proj"].t().contiguous(),
    }
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for kind in ("weight", "bias"):
            out[f"vision_model.{ours}.{kind}"] = visual[f"{theirs}.{kind}"]
    blocks = sorted({int(key.split(".")[2]) for key in visual if key.startswith("transformer.resblocks.")})
    renames = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
               "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for block in blocks:
        source, target = f"transformer.resblocks.{block}.", f"vision_model.encoder.layers.{block}."
        for theirs, ours in renames.items():
            for kind in ("weight", "bias"):
                out[f"{target}{ours}.{kind}"] = visual[f"{source}{theirs}.{kind}"]
        for kind in ("weight", "bias"):  # open_clip keeps q, k, v stacked in one in_proj
            for name, part in zip(("q_proj", "k_proj", "v_proj"), visual[f"{source}attn.in_proj_{kind}"].chunk(3)):
                out[f"{target}self_attn.{name}.{kind}"] = part.contiguous()
    return out


def _load_strict(module: torch.nn.Module, state: StateDict, part: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing or unexpected:
        raise NoiseExpError(f"{part}: the converted checkpoint does not fit ({len(missing)} missing keys, e.g. "
                            f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})")


def convert_checkpoint(state: Mapping[str, torch.Tensor], unet: Mapping[str, Any], vae: Mapping[str, Any],
                       image_encoder: Mapping[str, Any]):
    """All four SV3D components with Stability's weights (`unet`, `vae`, `image_encoder` are config dicts)."""
    from noise_exp.models.sv3d_components import SV3DComponents

    converted = {"unet": convert_unet(state, int(unet["layers_per_block"])), "vae": convert_vae(state, vae),
                 "image_encoder": convert_open_clip_visual(state)}  # all keys found before building big modules
    components = SV3DComponents.from_config(dict(unet), dict(vae), dict(image_encoder))
    for part, weights in converted.items():
        _load_strict(getattr(components, part), weights, part)
    return components


def read_checkpoint(path: Path) -> StateDict:
    """A .safetensors (or torch .ckpt/.pt with an optional 'state_dict') checkpoint, on CPU."""
    path = Path(path)
    if not path.is_file():
        raise NoiseExpError(f"checkpoint not found: {path} (download sv3d_u.safetensors from the hub repo "
                            f"stabilityai/sv3d after accepting its license)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    return loaded.get("state_dict", loaded)


def prefix_counts(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """How many keys sit under each expected prefix (a quick check of a downloaded checkpoint)."""
    prefixes = (UNET_PREFIX, VAE_ENCODER_PREFIX, VAE_DECODER_PREFIX, CLIP_VISUAL_PREFIX)
    counts = {prefix: sum(key.startswith(prefix) for key in state) for prefix in prefixes}
    counts["other"] = len(state) - sum(counts.values())
    return counts


def convert_file(checkpoint: Path, out_dir: Path, configs: Mapping[str, Mapping[str, Any]] | None = None,
                 dtype: str = "float32") -> Path:
    """Read `checkpoint`, convert it with SV3D-U's configs (or `configs` overrides) and save the folder."""
    from noise_exp.models.loading import DTYPES
    from noise_exp.models.sv3d_components import SV3D_U_IMAGE_ENCODER, SV3D_U_UNET, SV3D_U_VAE

    if dtype not in DTYPES:
        raise NoiseExpError(f"unknown --dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    configs = configs or {}
    state = read_checkpoint(checkpoint)
    components = convert_checkpoint(state, {**SV3D_U_UNET, **configs.get("unet", {})},
                                    {**SV3D_U_VAE, **configs.get("vae", {})},
                                    {**SV3D_U_IMAGE_ENCODER, **configs.get("image_encoder", {})})
    del state
    for module in (components.unet, components.vae, components.image_encoder):
        module.to(DTYPES[dtype])
    return save_pipeline_atomically(components, out_dir)
