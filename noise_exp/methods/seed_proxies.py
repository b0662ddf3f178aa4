"""Proxies of s(eps) that cost no network call (issue 24): statistics of the noise itself, and a seed prior measured
once on other prompts (`python -m noise_exp.bank prior`).

| proxy | score of a candidate |
|---|---|
| `norm` | its noise's norm \\|eps\\| |
| `lowfreq:f` | the energy of its noise's f x f block means, \\|f avgpool_f(eps)\\|^2 / d_f (1 in expectation) |
| `prior:<file>` | its seed's mean s(eps) over the prior's calibration prompts (the same model and sampler only) |

Round-trip proxies (`partial`, `steps`, `resolution`, `exact`) live in noise_exp.methods.proxies; `parse_any_proxy`
reads either kind and `build_scorer` builds its scorer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from noise_exp.candidates.keys import BankScope
from noise_exp.candidates.seed_prior import SeedPrior, read_prior
from noise_exp.errors import NoiseExpError
from noise_exp.methods.proxies import Proxy, ProxyScorer, downsample_noise, parse_proxy
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.similarity import SimilarityFn, stability

ZERO_NFE_KINDS = ("norm", "lowfreq", "prior")


def noise_norm(noise: torch.Tensor) -> torch.Tensor:
    """|eps| per sample (its concentration: relative std ~ 1/sqrt(2d) for d iid N(0, 1) values)."""
    return noise.flatten(1).double().norm(dim=1).float()


def low_frequency_energy(noise: torch.Tensor, factor: int) -> torch.Tensor:
    """|eps_f|^2 / d_f, eps_f = f avgpool_f(eps): the mean square of the f x f block means, scaled to 1 in expectation."""
    return downsample_noise(noise.double(), factor).flatten(1).pow(2).mean(dim=1).float()


@dataclass(frozen=True)
class NoiseProxy:
    """A zero-NFE proxy: `kind` in ZERO_NFE_KINDS; `value` the lowfreq factor; `prior` the loaded seed prior."""

    kind: str
    value: int = 0
    prior: SeedPrior | None = field(default=None, compare=False)

    def __str__(self) -> str:
        if self.kind == "prior":
            return f"prior:{self.prior.source if self.prior else ''}"
        return f"lowfreq:{self.value}" if self.kind == "lowfreq" else self.kind


def parse_any_proxy(text: str, key: str = "method.proxy") -> Proxy | NoiseProxy:
    """A round-trip proxy (noise_exp.methods.proxies) or a zero-NFE one: `norm`, `lowfreq:<f>`, `prior:<file>`."""
    kind, _, value = str(text).strip().partition(":")
    if kind not in ZERO_NFE_KINDS:
        try:
            return parse_proxy(text, key)
        except NoiseExpError:
            raise NoiseExpError(f"{key} must be partial:<k>, steps:<T>, resolution:<f>, exact, norm, lowfreq:<f> or "
                                f"prior:<file>, got {text!r}") from None
    if kind == "norm" and not value:
        return NoiseProxy("norm")
    if kind == "lowfreq" and value.isdigit() and int(value) >= 1:
        return NoiseProxy("lowfreq", int(value))
    if kind == "prior" and value:
        return NoiseProxy("prior", prior=read_prior(Path(value)))
    raise NoiseExpError(f"{key} must be norm, lowfreq:<f> (f >= 1) or prior:<file>, got {text!r}")


@dataclass
class NoiseStatisticScorer:
    """The scores of a zero-NFE proxy (float32, on the CPU); `unet_calls` per candidate is 0."""

    proxy: NoiseProxy
    unet_calls: int = 0

    def __call__(self, noise: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        if self.proxy.kind == "prior":
            return torch.from_numpy(self.proxy.prior.scores([int(s) for s in seeds])).float()
        if self.proxy.kind == "lowfreq":
            height, width = noise.shape[-2:]
            if height % self.proxy.value or width % self.proxy.value:
                raise NoiseExpError(f"proxy lowfreq:{self.proxy.value} needs latents whose sides it divides, got "
                                    f"{height} x {width}")
            return low_frequency_energy(noise.cpu(), self.proxy.value)
        return noise_norm(noise.cpu())


def build_scorer(proxy: Proxy | NoiseProxy, model: NoiseModel, cond: Conditioning,
                 similarity: SimilarityFn = stability) -> ProxyScorer | NoiseStatisticScorer:
    """The scorer of either kind of proxy for one prompt."""
    if isinstance(proxy, NoiseProxy):
        return NoiseStatisticScorer(proxy)
    return ProxyScorer.build(proxy, model, cond, similarity)


def check_prior_scope(proxy: Proxy | NoiseProxy, settings: Mapping[str, Any], similarity: str) -> None:
    """A seed prior is used only under the model/sampler settings (and similarity) it was measured with."""
    if isinstance(proxy, NoiseProxy) and proxy.prior is not None:
        proxy.prior.check_scope(BankScope.from_settings(settings), similarity)
