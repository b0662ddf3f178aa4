"""Sampling and decoding with gradients with respect to the initial noise, for reward-based noise optimization.

The latent models' own `denoise` / `decode` run without gradients. Here the same sampler (the adapter's
`denoise_step`, a DDIM or a flow-matching Euler step, and `vae_input`) runs with autograd, each sampler step and
the VAE decoder wrapped in an activation checkpoint: the forward keeps only the T + 1 step inputs, and the backward
recomputes one step at a time, so memory is that of one step's activations plus T latents, at the price of one more forward pass per step.
"""
from __future__ import annotations

from typing import Callable
from weakref import WeakKeyDictionary

import torch
from torch.utils.checkpoint import checkpoint

from noise_exp.errors import NoiseExpError
from noise_exp.methods.compute import NetworkPasses
from noise_exp.models.base import Conditioning, NoiseModel, SteppedLatentModel

_GENERATION_NFE: "WeakKeyDictionary[NoiseModel, int]" = WeakKeyDictionary()


def generation_nfe(model: NoiseModel, cond: Conditioning) -> int:
    """NFEs of one plain generation (T sampler steps, CFG passes counted): the network passes of one denoising
    pass of one noise, counted once per model."""
    if model not in _GENERATION_NFE:
        with NetworkPasses(model.network) as passes:
            model.denoise(model.draw_noise([0]), cond)
        _GENERATION_NFE[model] = passes.count
    return _GENERATION_NFE[model]


class DifferentiableSampler:
    """eps -> x0 = M(eps, c) -> pixels in [0, 1], differentiable with respect to eps (latent models whose sampler is
    explicit steps: DDIM and flow-matching Euler)."""

    def __init__(self, model: NoiseModel, cond: Conditioning, method: str = "reward_opt") -> None:
        if not isinstance(model, SteppedLatentModel):
            raise NoiseExpError(f"method={method} back-propagates through the sampler's steps and a VAE decoder, which "
                                f"model {model.name} ({type(model).__name__}) does not expose; use a DDIM (SD 1.x / "
                                f"SDXL family, small_*) or flow-matching (SD3, FLUX) model")
        self.model = model
        self.cond = cond

    def latents(self, noise: torch.Tensor) -> torch.Tensor:
        """x0 from eps through the T sampler steps (the adapter's own `denoise_step`), one checkpoint per step when
        gradients are wanted."""
        sample = noise.to(self.model.device, torch.float32)
        for index in range(self.model.num_steps):
            sample = self._maybe_checkpointed(self.model.denoise_step, sample, index, self.cond)
        return sample

    def pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1]: the VAE decoder and the pipeline's postprocessing (x / 2 + 0.5, clamped)."""
        return self._maybe_checkpointed(self._decode, latents)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.model.pipe.vae.decode(self.model.vae_input(latents), return_dict=False)[0]
        return (images.float() / 2 + 0.5).clamp(0, 1)

    @staticmethod
    def _maybe_checkpointed(function: Callable[..., torch.Tensor], tensor: torch.Tensor, *args) -> torch.Tensor:
        if torch.is_grad_enabled() and tensor.requires_grad:
            return checkpoint(function, tensor, *args, use_reentrant=False)
        return function(tensor, *args)
