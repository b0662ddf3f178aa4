"""Algorithm 1 at a fraction of its cost: rank all K candidates by a cheap proxy of s(eps), check a short list exactly.

`method=select_fast` scores the K seeds with `method.proxy` (noise_exp.methods.proxies), then runs the exact round
trip on the proxy's best `method.shortlist` (M) and worst `method.unstable_shortlist` (U) candidates: `stable` is the
exact argmax and `unstable` the exact argmin of the candidates checked exactly. NFEs per prompt:
K x proxy NFEs + (M + U) x exact NFEs; when M + U >= K every candidate is checked exactly and no proxy runs, which is
`method=select` (same seeds, same scores).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods.method import Method, MethodOutput, NoiseSelection, Progress, selection_variants
from noise_exp.methods.proxies import ProxyScorer
from noise_exp.methods.roundtrip import ModelRoundTrip, RoundTripFn
from noise_exp.methods.seed_proxies import build_scorer, check_prior_scope, parse_any_proxy
from noise_exp.methods.selection import SelectionResult, select_noise
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.params import integer_param
from noise_exp.similarity import SimilarityFn, stability


def shortlist_indices(proxy_scores: torch.Tensor, top: int, bottom: int) -> list[int]:
    """Indices of the `top` highest and the `bottom` lowest proxy scores, in index order (ties: lower index first)."""
    order = torch.argsort(proxy_scores, descending=True, stable=True).tolist()
    return sorted(set(order[:top]) | set(order[len(order) - bottom:] if bottom else ()))


@dataclass
class FastSelectionResult:
    exact: SelectionResult  # the candidates checked exactly, in seed order; its stable / unstable are the variants
    proxy_scores: torch.Tensor | None  # every candidate's proxy score in seed order; None when all were checked


def select_fast_noise(
    seeds: Sequence[int],
    draw_noise: Callable[[Sequence[int]], torch.Tensor],
    proxy: Callable[[torch.Tensor, Sequence[int]], torch.Tensor],
    roundtrip: RoundTripFn,
    shortlist: int,
    unstable_shortlist: int = 1,
    batch_size: int = 1,
    similarity: SimilarityFn = stability,
    on_batch: Callable[[int], None] | None = None,
    on_candidate: Callable[[int, float], None] | None = None,
) -> FastSelectionResult:
    """Rank `seeds` by `proxy`, then Algorithm 1 (`select_noise`) on the proxy's `shortlist` best and
    `unstable_shortlist` worst."""
    seeds = [int(s) for s in seeds]
    if shortlist + unstable_shortlist >= len(seeds):
        return FastSelectionResult(select_noise(seeds, draw_noise, roundtrip, batch_size, similarity, on_batch,
                                                on_candidate), None)
    scores = []
    for start in range(0, len(seeds), max(1, batch_size)):
        batch_seeds = seeds[start:start + batch_size]
        scores.append(proxy(draw_noise(batch_seeds), batch_seeds))
        if on_batch is not None:
            on_batch(len(batch_seeds))
    proxy_scores = torch.cat(scores)
    checked = [seeds[i] for i in shortlist_indices(proxy_scores, shortlist, unstable_shortlist)]
    return FastSelectionResult(select_noise(checked, draw_noise, roundtrip, batch_size, similarity,
                                            on_candidate=on_candidate), proxy_scores)


def check_proxy_cost(proxy: Any, num_seeds: int, checked: int, model: NoiseModel, scorer: ProxyScorer,
                     key: str = "method.proxy") -> None:
    """A proxy that would run must make the prompt cheaper than exact selection (K x exact NFEs)."""
    if checked >= num_seeds:
        return  # every candidate is checked exactly: no proxy runs
    exact = num_seeds * model.unet_calls_per_roundtrip
    fast = num_seeds * scorer.unet_calls + checked * model.unet_calls_per_roundtrip
    if fast >= exact:
        raise NoiseExpError(
            f"{key}={proxy} costs {fast} NFEs per prompt (K x {scorer.unet_calls} proxy + {checked} x "
            f"{model.unet_calls_per_roundtrip} exact), not below exact selection's {exact} (K = {num_seeds} "
            f"x {model.unet_calls_per_roundtrip}); choose a cheaper proxy or use method=select")


class FastSelection(NoiseSelection):
    """`method=select_fast`: Algorithm 1 with the K candidates ranked by a proxy and a short list checked exactly."""

    name = "select_fast"
    attach_bank = Method.attach_bank  # the bank stores exact candidates; proxy scores are not candidates
    at_budget = Method.at_budget  # sits out of the equal-compute study (its proxy passes are not counted there)

    def __init__(self, num_seeds: int = 100, seed_start: int = 0, batch_size: int = 8, similarity: str = "cosine",
                 seeds_per_prompt: bool = False, proxy: str = "partial:2", shortlist: int = 10,
                 unstable_shortlist: int = 1, config_key: str = "method") -> None:
        super().__init__(num_seeds, seed_start, batch_size, similarity, seeds_per_prompt, False, config_key)
        self.proxy = parse_any_proxy(proxy, f"{config_key}.proxy")
        self.shortlist = integer_param(f"{config_key}.shortlist", shortlist, 1)
        self.unstable_shortlist = integer_param(f"{config_key}.unstable_shortlist", unstable_shortlist, 1)

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        check_prior_scope(self.proxy, settings, self.similarity_name)

    def unet_calls(self, model: NoiseModel, scorer: ProxyScorer, result: FastSelectionResult) -> int:
        """K x proxy NFEs (when the proxy ran) + (checked candidates) x exact NFEs."""
        proxy_calls = 0 if result.proxy_scores is None else self.num_seeds * scorer.unet_calls
        return proxy_calls + len(result.exact.seeds) * model.unet_calls_per_roundtrip

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if progress:
                progress(f"proxy {done[0]}/{self.num_seeds}")

        start = time.perf_counter()
        scorer = build_scorer(self.proxy, model, cond, self.similarity)
        check_proxy_cost(self.proxy, self.num_seeds, self.shortlist + self.unstable_shortlist, model, scorer)
        result = select_fast_noise(self.candidate_seeds(prompt_index), model.draw_noise, scorer,
                                   ModelRoundTrip(model, cond), self.shortlist, self.unstable_shortlist,
                                   self.batch_size, self.similarity, on_batch)
        seconds = time.perf_counter() - start
        return MethodOutput(variants=selection_variants(self, result.exact, seconds, self.unet_calls(model, scorer, result)),
                            selection_scores=list(zip(result.exact.seeds, result.exact.scores.tolist())))
