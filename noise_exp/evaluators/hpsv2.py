"""HPS v2 (Wu et al., 2023): an open_clip ViT-H-14 fine-tuned on human preferences.

score = 100 * <img_emb, txt_emb> of L2-normalised features: the official `hpsv2.score()` without the factor
100 (the paper's Tables 1-2 report it x100: 27.27 means 0.2727). Preprocessing is hpsv2's: longest side to
224, zero-pad, OpenAI normalisation. v2.0 is the default (the paper's HPS v2); v2.1 by `version`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from noise_exp.evaluators import _openclip, preprocess
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.weights import resolve

CHECKPOINTS = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HUB_REPO = "xswu/HPSv2"


class HPSv2(Evaluator):
    name = "hpsv2"
    needs_prompts = True
    differentiable = True

    def __init__(self, version: str = "v2.0", checkpoint: str | None = None, arch: str = "ViT-H-14",
                 scale: float = 100.0, device: str | None = None, dtype: str = "float32", batch_size: int = 16):
        super().__init__(device, dtype, batch_size)
        if version not in CHECKPOINTS:
            from noise_exp.errors import NoiseExpError
            raise NoiseExpError(f"evaluator.hpsv2.version={version} is not one of {sorted(CHECKPOINTS)}")
        self.version, self.checkpoint, self.arch, self.scale = version, checkpoint, arch, float(scale)

    def _load(self):
        path = resolve(self.checkpoint, weight=f"HPS {self.version} ({CHECKPOINTS[self.version]})",
                       config_key="evaluator.hpsv2.checkpoint", hub=(HUB_REPO, CHECKPOINTS[self.version]))
        return _openclip.load_open_clip(self.arch, path, self.device, self.dtype)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        model, tokenizer = self.load()
        scores = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            image_emb = _openclip.encode_images(model, chunk, _openclip.resize_longest_and_pad,
                                                self.device, self.dtype)
            text_emb = _openclip.encode_texts(model, tokenizer, prompts[start:start + self.batch_size], self.device)
            scores.append((image_emb * text_emb).sum(-1))
        return self.scale * torch.cat(scores).cpu().float() if scores else torch.zeros(0)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        batch = self._model_pixels(pixels, prompts)
        model, tokenizer = self.load()
        similarity = _openclip.text_image_similarity(model, tokenizer, batch, prompts,
                                                     preprocess.resize_longest_and_pad, self.dtype)
        return (self.scale * similarity).to(pixels.device)
