"""SSIM (Wang et al., 2004) between an image and its reference; higher is better.

The standard definition: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, data range 1, valid
convolution, per-channel maps averaged over channels and pixels (as pytorch_msssim and torchmetrics do).
Images are RGB in [0, 1]; a reference of another size is resized to its image (bicubic).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.lpips import score_pairs


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return kernel / kernel.sum()


def ssim(first: torch.Tensor, second: torch.Tensor, window_size: int = 11, sigma: float = 1.5,
         data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM of two [B, C, H, W] batches (separable Gaussian filter, valid padding)."""
    channels = first.shape[1]
    kernel = gaussian_window(window_size, sigma).to(first)
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, horizontal, groups=channels), vertical, groups=channels)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu1, mu2 = blur(first), blur(second)
    sigma1 = blur(first * first) - mu1 ** 2
    sigma2 = blur(second * second) - mu2 ** 2
    sigma12 = blur(first * second) - mu1 * mu2
    luminance = (2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1)
    contrast_structure = (2 * sigma12 + c2) / (sigma1 + sigma2 + c2)
    return (luminance * contrast_structure).flatten(1).mean(1)


class SSIM(Evaluator):
    name = "ssim"
    needs_references = True

    def __init__(self, window_size: int = 11, sigma: float = 1.5, device: str | None = None,
                 dtype: str = "float32", batch_size: int = 16):
        super().__init__(device, "float32", batch_size)
        self.window_size, self.sigma = int(window_size), float(sigma)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        return score_pairs(images, references, self.batch_size, lambda first, second: ssim(
            first.to(self.device, torch.float64), second.to(self.device, torch.float64), self.window_size, self.sigma))
