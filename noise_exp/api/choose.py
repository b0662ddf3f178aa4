"""`nx.select` (Algorithm 1, or its proxy-ranked form) and `nx.stability` (eq. 3) on a user's pipeline.

Both call what `method=select` and `method=select_fast` call (`run_selection`, `select_fast_noise`), so a seed
and its stability are the runner's for the same model, prompt and settings.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from noise_exp.api.pipelines import Sampling, from_pipe_latents, prepare, seed_range, to_pipe_latents, untouched
from noise_exp.api.progress import Callback, Progress
from noise_exp.api.results import Choice
from noise_exp.errors import NoiseExpError
from noise_exp.methods.banked import run_selection
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.select_fast import check_proxy_cost, select_fast_noise
from noise_exp.methods.selection import SelectionResult
from noise_exp.methods.seed_proxies import build_scorer, parse_any_proxy
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.params import integer_param
from noise_exp.similarity import get_similarity


def select(pipe: Any, prompt: str, num_seeds: int = 16, num_inference_steps: int | None = None,
           guidance_scale: float | None = None, *, seed_start: int = 0, height: int | None = None,
           width: int | None = None, batch_size: int = 8, proxy: str | None = None, shortlist: int = 10,
           unstable_shortlist: int = 1, bank: str | Path | None = None, similarity: str = "cosine",
           inversion_guidance_scale: float = 1.0, max_sequence_length: int | None = None, progress: bool = True,
           callback: Callback | None = None) -> Choice:
    """Algorithm 1 on `pipe`: the seed of seed_start .. seed_start+num_seeds-1 whose noise is most stable under the
    DDIM (Euler for flow models) round trip at these sampling settings. With `proxy` (e.g. "partial:2") the seeds
    are ranked by the proxy and only the `shortlist` best (and `unstable_shortlist` worst) run the exact round trip
    (`method=select_fast`); with `bank` the candidates a bank folder holds are reused and new ones stored there."""
    seeds = seed_range(seed_start, num_seeds)
    batch_size = integer_param("batch_size", batch_size, 1)
    if proxy is not None and bank is not None:
        raise NoiseExpError("bank= stores exact candidates; proxy scores are not candidates: use one or the other")
    start = time.perf_counter()
    with untouched(pipe):
        model, cond = prepare(pipe, prompt, Sampling(num_inference_steps, guidance_scale, height, width,
                                                     inversion_guidance_scale, max_sequence_length))
        bar = Progress(len(seeds), "nx.select", progress, callback)
        try:
            with NetworkPasses(model.network) as passes:
                if proxy is None:
                    result, reused = _exact(seeds, model, cond, similarity, batch_size, bank, bar)
                    proxy_scores = None
                else:
                    result, proxy_scores = _fast(seeds, model, cond, similarity, batch_size, proxy, shortlist,
                                                 unstable_shortlist, bar)
                    reused = 0
        finally:
            bar.close()
        latents = to_pipe_latents(model, result.stable.noise[None])
    exact = dict(zip(result.seeds, result.scores.tolist()))
    candidates = pd.DataFrame({"seed": seeds, "stability": [exact.get(seed, math.nan) for seed in seeds]})
    if proxy_scores is not None:
        candidates["proxy"] = proxy_scores.tolist()
    return Choice(latents, result.stable.seed, result.stable.stability, candidates, passes.count,
                  time.perf_counter() - start, reused)


def _exact(seeds: list[int], model: NoiseModel, cond: Conditioning, similarity: str, batch_size: int,
           bank: str | Path | None, bar: Progress) -> tuple[SelectionResult, int]:
    """`method=select`'s Algorithm 1 (with the bank folder when given); the result and the candidates reused."""
    session = None
    if bank is not None:
        from noise_exp.api.bank import open_bank

        session = open_bank(bank, model)
    result, _ = run_selection(seeds, model, cond, similarity, batch_size, session, None, bar.batch, bar.candidate)
    return result, session.reused if session is not None else 0


def _fast(seeds: list[int], model: NoiseModel, cond: Conditioning, similarity: str, batch_size: int, proxy: str,
          shortlist: int, unstable_shortlist: int, bar: Progress) -> tuple[SelectionResult, torch.Tensor | None]:
    """`method=select_fast`: every seed ranked by the proxy, the short lists checked exactly; the exact result and
    the proxy scores (None when every seed was checked exactly)."""
    parsed = parse_any_proxy(proxy, "proxy")
    if getattr(parsed, "kind", None) == "prior":
        raise NoiseExpError("proxy=prior:<file> is a seed prior measured under the runner's model settings, which "
                            "it checks against run.json: use it with run.py method=select_fast")
    shortlist = integer_param("shortlist", shortlist, 1)
    unstable_shortlist = integer_param("unstable_shortlist", unstable_shortlist, 1)
    similarity_fn = get_similarity(similarity)
    scorer = build_scorer(parsed, model, cond, similarity_fn)
    check_proxy_cost(parsed, len(seeds), shortlist + unstable_shortlist, model, scorer, "proxy")
    fast = select_fast_noise(seeds, model.draw_noise, scorer, ModelRoundTrip(model, cond), shortlist,
                             unstable_shortlist, batch_size, similarity_fn, bar.batch, bar.candidate)
    return fast.exact, fast.proxy_scores


def stability(pipe: Any, prompt: str, latents: torch.Tensor, num_inference_steps: int | None = None,
              guidance_scale: float | None = None, *, height: int | None = None, width: int | None = None,
              similarity: str = "cosine", inversion_guidance_scale: float = 1.0,
              max_sequence_length: int | None = None) -> float | list[float]:
    """Eq. 3, s(eps) = cos(eps, F(eps)), of `latents` as `pipe(prompt, latents=...)` takes them ([B, ...]): a float
    for one sample, a list for a batch."""
    with untouched(pipe):
        model, cond = prepare(pipe, prompt, Sampling(num_inference_steps, guidance_scale, height, width,
                                                     inversion_guidance_scale, max_sequence_length))
        noise = from_pipe_latents(model, latents)
        _, inverted = ModelRoundTrip(model, cond)(noise, list(range(len(noise))))
        values = get_similarity(similarity)(noise, inverted).float().cpu().tolist()
    return values[0] if len(values) == 1 else values
