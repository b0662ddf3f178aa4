"""CLIP-S (CLIP similarity, open_clip of Ilharco et al., 2021), used by the paper's image-to-3D table.

With `references` it is the cosine similarity of the image and its reference view (image-to-image); with
`prompts` only, the cosine similarity of image and prompt (the mode `score_pixels` differentiates). Defaults to
OpenAI ViT-L/14 (quickgelu, the same weights AES loads, so the two share one cached model).
"""
from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import _openclip, preprocess
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.weights import resolve


class CLIPScore(Evaluator):
    name = "clip_s"
    differentiable = True  # with prompts; the image-reference mode has no tensor path

    def __init__(self, checkpoint: str | None = None, arch: str = "ViT-L-14-quickgelu",
                 hub_file: tuple[str, str] | list[str] | None = ("timm/vit_large_patch14_clip_224.openai",
                                                                  "open_clip_pytorch_model.bin"),
                 scale: float = 1.0, device: str | None = None, dtype: str = "float32", batch_size: int = 16):
        super().__init__(device, dtype, batch_size)
        self.checkpoint, self.arch, self.scale = checkpoint, arch, float(scale)
        self.hub = tuple(hub_file) if hub_file else None

    def _load(self):
        path = resolve(self.checkpoint, weight=f"CLIP {self.arch}", config_key="evaluator.clip_s.checkpoint",
                       hub=self.hub)
        return _openclip.load_open_clip(self.arch, path, self.device, self.dtype)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        if references is None and prompts is None:
            raise NoiseExpError("clip_s needs reference images or prompts")
        paired = references if references is not None else prompts
        if len(paired) != len(images):
            raise NoiseExpError(f"clip_s needs one reference or prompt per image (got {len(paired)} for {len(images)})")
        model, tokenizer = self.load()
        scores = []
        encode = _openclip.resize_shortest_and_crop
        for start in range(0, len(images), self.batch_size):
            end = start + self.batch_size
            image_emb = _openclip.encode_images(model, images[start:end], encode, self.device, self.dtype)
            if references is not None:
                other = _openclip.encode_images(model, references[start:end], encode, self.device, self.dtype)
            else:
                other = _openclip.encode_texts(model, tokenizer, prompts[start:end], self.device)
            scores.append((image_emb * other).sum(-1))
        return self.scale * torch.cat(scores).cpu().float() if scores else torch.zeros(0)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        if prompts is None:
            raise NoiseExpError("clip_s.score_pixels needs prompts: the image-reference mode of clip_s has no "
                                "differentiable path")
        batch = self._model_pixels(pixels, prompts)
        model, tokenizer = self.load()
        similarity = _openclip.text_image_similarity(model, tokenizer, batch, prompts,
                                                     preprocess.resize_shortest_and_crop, self.dtype)
        return (self.scale * similarity).to(pixels.device)
