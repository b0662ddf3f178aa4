"""Noise inversion stability (paper eq. 3, appendix A.1) and the other similarity metrics."""
from __future__ import annotations

from typing import Callable

import torch

from noise_exp.errors import NoiseExpError


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).to(torch.float32)


def stability(noise: torch.Tensor, inverted_noise: torch.Tensor) -> torch.Tensor:
    """Eq. (3): s(eps) = cos(eps, eps') per sample on the flattened latent, accumulated in fp32."""
    return torch.nn.functional.cosine_similarity(_flat(noise), _flat(inverted_noise), dim=1, eps=1e-12)


def negative_rmse(noise: torch.Tensor, inverted_noise: torch.Tensor) -> torch.Tensor:
    """-sqrt(mean((eps - eps')^2)) per sample: 0 for a fixed point, more negative when less stable."""
    return -(_flat(noise) - _flat(inverted_noise)).pow(2).mean(dim=1).sqrt()


def pearson(noise: torch.Tensor, inverted_noise: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per sample (cosine similarity of the mean-centred latents)."""
    a, b = _flat(noise), _flat(inverted_noise)
    return stability(a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True))


SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SIMILARITIES: dict[str, SimilarityFn] = {"cosine": stability, "neg_rmse": negative_rmse, "pearson": pearson}


def get_similarity(name: str) -> SimilarityFn:
    """Look up a similarity metric by its config name (`method.similarity`)."""
    try:
        return SIMILARITIES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable value such as a list from the command line
        raise NoiseExpError(f"unknown similarity {name!r}; choose one of {sorted(SIMILARITIES)}") from None

