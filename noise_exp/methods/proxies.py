"""Cheap stand-ins for the inversion stability s(eps): the same round trip, shorter or smaller (issue 16).

A proxy is written `kind:value` (`method.proxy`):

| proxy | round trip | NFEs per candidate |
|---|---|---|
| `partial:k` | the first k of the T denoising steps, inverted back (eps -> x_{t_k} -> eps') | k/T of the exact |
| `steps:T'` | a whole round trip with T' DDIM steps instead of T | T'/T of the exact |
| `resolution:f` | the round trip of `downsample_noise(eps, f)` on latents f times smaller a side | the exact count, each pass on 1/f^2 of the latent |
| `exact` | the round trip itself | the exact |

Each scores a candidate by the method's similarity between the (reduced) noise and its (reduced) round trip.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.similarity import SimilarityFn, stability

PROXY_KINDS = ("partial", "steps", "resolution", "exact")


def downsample_noise(noise: torch.Tensor, factor: int) -> torch.Tensor:
    """eps_f = f * avgpool_f(eps): a mean of f^2 iid N(0, 1) values times f is again N(0, 1), so eps_f is a noise."""
    return torch.nn.functional.avg_pool2d(noise, factor) * factor


@dataclass(frozen=True)
class Proxy:
    """A cheaper round trip that ranks candidates like s(eps) might: `kind` in PROXY_KINDS, `value` k, T' or f."""

    kind: str
    value: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind == "exact" else f"{self.kind}:{self.value}"

    def view(self, model: NoiseModel) -> NoiseModel:
        """The model as this proxy runs it (one clear error where the model cannot)."""
        if self.kind == "partial":
            return model.truncated(self.value)
        if self.kind == "steps":
            return model.with_num_steps(self.value)
        if self.kind == "resolution":
            return model.at_resolution(self.value)
        return model

    def reduce(self, noise: torch.Tensor) -> torch.Tensor:
        """The noise the proxy's round trip starts from."""
        return downsample_noise(noise, self.value) if self.kind == "resolution" else noise


def parse_proxy(text: str, key: str = "method.proxy") -> Proxy:
    """`partial:2`, `steps:3`, `resolution:2` or `exact` as a Proxy (a one-line error naming `key` otherwise)."""
    kind, _, value = str(text).strip().partition(":")
    syntax = f"{key} must be partial:<k>, steps:<T>, resolution:<f> or exact, got {text!r}"
    if kind not in PROXY_KINDS:
        raise NoiseExpError(syntax)
    if kind == "exact":
        if value:
            raise NoiseExpError(syntax)
        return Proxy(kind)
    if not value.isdigit() or int(value) < 1:
        raise NoiseExpError(syntax)
    return Proxy(kind, int(value))


@dataclass
class ProxyScorer:
    """s_proxy(eps) for one model under one prompt's conditioning; `unet_calls` per candidate."""

    proxy: Proxy
    model: NoiseModel  # the proxy's view of the model
    cond: Conditioning
    similarity: SimilarityFn = stability

    @classmethod
    def build(cls, proxy: Proxy, model: NoiseModel, cond: Conditioning,
              similarity: SimilarityFn = stability) -> "ProxyScorer":
        return cls(proxy, proxy.view(model), cond, similarity)

    @property
    def unet_calls(self) -> int:
        return self.model.unet_calls_per_roundtrip

    def __call__(self, noise: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """The proxy score of each noise of the batch (float32, on the CPU)."""
        reduced = self.proxy.reduce(noise)
        _, inverted = ModelRoundTrip(self.model, self.cond)(reduced, seeds)
        return self.similarity(reduced, inverted).float().cpu()
