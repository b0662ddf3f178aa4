"""`nx.best_of_n`: N plain generations scored by a verifier, the best kept, through `method=best_of_n`'s functions
(`scored_generation`, `best_of_n`)."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from noise_exp.api.pipelines import Sampling, prepare, seed_range, to_pipe_latents, untouched
from noise_exp.api.progress import Progress
from noise_exp.api.results import BestOfN
from noise_exp.api.verifiers import ImageScore, image_score
from noise_exp.methods.best_of_n import best_of_n as best_of_seeds, scored_generation
from noise_exp.params import integer_param

def best_of_n(pipe: Any, prompt: str, num_seeds: int = 8, *, verifier: str | ImageScore,
              num_inference_steps: int | None = None, guidance_scale: float | None = None, seed_start: int = 0,
              height: int | None = None, width: int | None = None, batch_size: int = 8,
              max_sequence_length: int | None = None, progress: bool = True,
              callback: Callable[[int, float], None] | None = None) -> BestOfN:
    """Best-of-N (Ma et al. 2025): generate seeds seed_start .. seed_start+num_seeds-1, score each decoded image with
    `verifier` (an evaluator name such as "hpsv2", or a callable(images, prompts) -> scores) and keep the best;
    `callback(seed, score)` hears each candidate."""
    seeds = seed_range(seed_start, num_seeds)
    batch_size = integer_param("batch_size", batch_size, 1)
    start = time.perf_counter()
    score = image_score(verifier)
    with untouched(pipe):
        model, cond = prepare(pipe, prompt, Sampling(num_inference_steps, guidance_scale, height, width,
                                                     max_sequence_length=max_sequence_length))
        spent = {"passes": 0.0, "seconds": 0.0}
        generate = scored_generation(model, cond, score, spent)
        bar = Progress(len(seeds), "nx.best_of_n", progress, callback)

        def heard(batch: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            noise, latents, scores = generate(batch)
            for seed, value in zip(batch, scores.tolist()):
                bar.candidate(seed, float(value))
            return noise, latents, scores

        try:
            with torch.no_grad():
                result = best_of_seeds(seeds, heard, batch_size, on_batch=bar.batch)
        finally:
            bar.close()
        latents = to_pipe_latents(model, result.best.noise[None])
    candidates = pd.DataFrame({"seed": result.seeds, "score": result.scores.tolist()})
    return BestOfN(latents, result.best.seed, result.best.score, candidates, int(round(spent["passes"])),
                   time.perf_counter() - start)
