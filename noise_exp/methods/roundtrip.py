"""F(eps) = invert(denoise(eps)) for one prompt, with the finiteness check that names prompt and seed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.models.base import Conditioning, NoiseModel


class RoundTripFn(Protocol):
    def __call__(self, noise: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (clean latents x0, inverted noise eps') for a batch of noises drawn from `seeds`."""


def check_finite(tensor: torch.Tensor, what: str, prompt: str, seeds: Sequence[int]) -> None:
    """Raise a user-facing error naming the prompt and the seed(s) whose latents are NaN/inf."""
    bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        bad_seeds = [int(s) for s, b in zip(seeds, bad.tolist()) if b]
        raise NoiseExpError(f"non-finite (NaN/inf) {what} for prompt {prompt!r}, seed(s) {bad_seeds}; "
                            f"try model.dtype=float32, a smaller method.lr, or the fp16-fix VAE")


@dataclass
class ModelRoundTrip:
    """The denoising-inversion map F of one model under one prompt's conditioning."""

    model: NoiseModel
    cond: Conditioning

    def __call__(self, noise: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        latents = self.denoise(noise, seeds)
        return latents, self.invert(latents, seeds)

    def denoise(self, noise: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """x0 = M(eps, c)."""
        check_finite(noise, "initial noise", self.cond.prompt, seeds)
        latents = self.model.denoise(noise, self.cond)
        check_finite(latents, "denoised latents", self.cond.prompt, seeds)
        return latents

    def invert(self, latents: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """eps' = Inversion(x0, c)."""
        inverted = self.model.invert(latents, self.cond)
        check_finite(inverted, "inverted noise", self.cond.prompt, seeds)
        return inverted
