"""AES: the LAION improved aesthetic predictor (Schuhmann et al., 2022).

A linear MLP (768 -> 1024 -> 128 -> 64 -> 16 -> 1, dropout between, no activation) on the L2-normalised
OpenAI CLIP ViT-L/14 image embedding; checkpoint `sac+logos+ava1-l14-linearMSE.pth`. The CLIP is open_clip's
`ViT-L-14-quickgelu` with the OpenAI weights: plain `ViT-L-14` in open_clip 3.x builds GELU and drifts by 1e-3.
Preprocessing is OpenAI CLIP's (shortest side to 224 bicubic, centre crop).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import _openclip, preprocess
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.weights import cached, first_line, read_checkpoint, resolve

MLP_URL = ("https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
           "sac+logos+ava1-l14-linearMSE.pth")
CLIP_HUB = ("timm/vit_large_patch14_clip_224.openai", "open_clip_pytorch_model.bin")


class AestheticMLP(nn.Module):
    """The predictor's head; module indices match the official state dict (`layers.{0,2,4,6,7}`)."""

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.layers(embedding)


def load_aesthetic_mlp(path: Path, device: torch.device) -> AestheticMLP:
    def load():
        state = read_checkpoint(path)
        if "layers.0.weight" not in state:
            raise NoiseExpError(f"{path} is not an aesthetic-predictor MLP checkpoint (no layers.0.weight)")
        mlp = AestheticMLP(state["layers.0.weight"].shape[1])
        try:
            mlp.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise NoiseExpError(f"{path} does not fit the aesthetic-predictor MLP: {first_line(error)}") from None
        return mlp.to(device).eval().requires_grad_(False)

    return cached(("aes_mlp", str(path), str(device)), load)


class AES(Evaluator):
    name = "aes"
    differentiable = True

    def __init__(self, mlp_checkpoint: str | None = None, clip_checkpoint: str | None = None,
                 clip_arch: str = "ViT-L-14-quickgelu", device: str | None = None, dtype: str = "float32",
                 batch_size: int = 16):
        super().__init__(device, dtype, batch_size)
        self.mlp_checkpoint, self.clip_checkpoint, self.clip_arch = mlp_checkpoint, clip_checkpoint, clip_arch

    def _load(self):
        mlp_path = resolve(self.mlp_checkpoint, weight="the aesthetic predictor MLP (sac+logos+ava1-l14-linearMSE.pth)",
                           config_key="evaluator.aes.mlp_checkpoint", url=MLP_URL)
        clip_path = resolve(self.clip_checkpoint, weight="OpenAI CLIP ViT-L/14 (open_clip format)",
                            config_key="evaluator.aes.clip_checkpoint", hub=CLIP_HUB)
        clip, _ = _openclip.load_open_clip(self.clip_arch, clip_path, self.device, self.dtype)
        return clip, load_aesthetic_mlp(mlp_path, self.device)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        clip, mlp = self.load()
        scores = []
        for start in range(0, len(images), self.batch_size):
            embedding = _openclip.encode_images(clip, images[start:start + self.batch_size],
                                                _openclip.resize_shortest_and_crop, self.device, self.dtype)
            scores.append(mlp(embedding).squeeze(-1))
        return torch.cat(scores).cpu().float() if scores else torch.zeros(0)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        clip, mlp = self.load()
        embedding = _openclip.encode_pixels(clip, self._model_pixels(pixels, prompts),
                                            preprocess.resize_shortest_and_crop, self.dtype)
        return mlp(embedding).squeeze(-1).to(pixels.device)
