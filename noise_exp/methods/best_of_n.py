"""Best-of-N by a verifier (Ma et al. 2025, "Inference-time scaling for diffusion models"), and its plain baseline.

`method=best_of_n` generates the N candidates of seeds seed_start .. seed_start+N-1 (denoise, decode), scores each
image with the verifier (`method.verifier`, any option of the `evaluator` group) and keeps the argmax (`best`); the
argmin (`worst`) and a seeded uniform pick (`random`) are reported for reference. No inversion: N generations.
`method=random` is the baseline at the same N: one generation from the same seeded pick, no scoring.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch

from noise_exp.candidates.session import BankSession
from noise_exp.errors import NoiseExpError
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.declaration import Budget, Comparison, VariantSpec
from noise_exp.methods.method import Method, MethodOutput, Progress
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.verifier import check_held_out, load_verifier
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.params import integer_param

if TYPE_CHECKING:
    from noise_exp.evaluators.base import Evaluator

NO_STABILITY = float("nan")  # these methods never invert, so s(eps) is not measured
RANDOM = VariantSpec("random", "Random pick", "reference")  # a uniform pick among the same N seeds


def random_position(pick_seed: int, prompt_id: int, n: int) -> int:
    """A uniform pick among n candidates seeded by (pick_seed, prompt id): the bank's `--by random` rule."""
    return int(np.random.default_rng([pick_seed, prompt_id]).integers(n))


def budget_count(key: str, budget_nfe: int, unit_nfe: float, what: str) -> int:
    """floor(budget / unit): how many units (generations, gradient steps) a budget in NFEs buys; at least one."""
    count = int(budget_nfe // unit_nfe)
    if count < 1:
        raise NoiseExpError(f"{key}={budget_nfe} NFEs is below one {what} ({unit_nfe:g} NFEs with this model)")
    return count


@dataclass
class ScoredCandidate:
    seed: int
    score: float
    noise: torch.Tensor | None  # None for a candidate read from the bank until it is regenerated
    latents: torch.Tensor | None


@dataclass
class BestOfNResult:
    seeds: list[int]
    scores: torch.Tensor  # the verifier's score of every candidate, in seed order
    best: ScoredCandidate  # argmax (ties: the first seed)
    worst: ScoredCandidate  # argmin
    random: ScoredCandidate  # the candidate at the seeded random position


Generate = Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def best_of_n(seeds: Sequence[int], generate: Generate, batch_size: int = 1, pick: int = 0,
              known: Mapping[int, float] | None = None, on_batch: Callable[[int], None] | None = None) -> BestOfNResult:
    """Best-of-N: r_i = R(decode(M(eps_i, c))) for seeds i; keep the argmax (and the argmin, and position `pick`).

    `generate(seeds)` returns (noise, latents, scores) of a batch; seeds in `known` (scores read from a bank) are
    not generated, and a kept one has no noise or latents until the caller regenerates it.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("best_of_n needs at least one seed")
    known = dict(known or {})
    scores = {seed: float(known[seed]) for seed in seeds if seed in known}
    kept: dict[int, ScoredCandidate] = {}
    todo = [s for s in seeds if s not in known]
    wanted = {seeds[pick]}
    for start in range(0, len(todo), max(1, batch_size)):
        batch = todo[start:start + batch_size]
        noise, latents, batch_scores = generate(batch)
        for index, seed in enumerate(batch):
            scores[seed] = float(batch_scores[index])
        best_so_far = max(scores.values())
        worst_so_far = min(scores.values())
        for index, seed in enumerate(batch):  # keep only what may be returned: memory stays O(batch)
            if seed in wanted or scores[seed] in (best_so_far, worst_so_far):
                kept[seed] = ScoredCandidate(seed, scores[seed], noise[index].detach().clone(),
                                             latents[index].detach().clone())
        if on_batch is not None:
            on_batch(len(batch))
    ordered = torch.tensor([scores[s] for s in seeds], dtype=torch.float32)

    def candidate(position: int) -> ScoredCandidate:
        seed = seeds[position]
        return kept.get(seed) or ScoredCandidate(seed, scores[seed], None, None)

    return BestOfNResult(seeds, ordered, candidate(int(ordered.argmax())), candidate(int(ordered.argmin())),
                         candidate(pick))


class SeededCandidates(Method):
    """Candidates are the seeds seed_start .. seed_start+N-1 of every prompt (N = `method.num_seeds`)."""

    def candidate_seeds(self, count: int | None = None) -> list[int]:
        return list(range(self.seed_start, self.seed_start + (count or self.num_seeds)))

    @staticmethod
    def generation(model: NoiseModel, cond: Conditioning, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        """(noise, clean latents, network passes, seconds) of one batch of plain generations."""
        start = time.perf_counter()
        noise = model.draw_noise(seeds)
        with NetworkPasses(model.network) as passes:
            latents = ModelRoundTrip(model, cond).denoise(noise, seeds)
        return noise, latents, passes.count, time.perf_counter() - start


def scored_generation(model: NoiseModel, cond: Conditioning,
                      score: Callable[[list[Any], list[str]], Sequence[float]], spent: dict[str, float]) -> Generate:
    """`best_of_n`'s `generate`: plain generations of a batch, decoded and scored by `score(images, prompts)`;
    their network passes and seconds (scoring included) are added to `spent`."""
    def generate(batch: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        noise, latents, passes, seconds = SeededCandidates.generation(model, cond, batch)
        start = time.perf_counter()
        scores = score(model.decode(latents, cond), [cond.prompt] * len(batch))
        if not isinstance(scores, torch.Tensor):  # a user's scorer may return a list (float64: no rounding)
            scores = torch.tensor([float(value) for value in scores], dtype=torch.float64)
        spent["passes"] += passes
        spent["seconds"] += seconds + time.perf_counter() - start
        return noise, latents, scores

    return generate


class BestOfN(SeededCandidates):
    """Best-of-N by `method.verifier`; keeps `best`, reports `worst` and `random` (same N, same seeds)."""

    name = "best_of_n"
    variants = (VariantSpec("best", "Best of N (verifier)", "kept"), VariantSpec("worst", "Worst of N (verifier)", "reference"),
                RANDOM)
    comparisons = (Comparison("best", "random"), Comparison("best", "worst"))
    main_variant = "best"
    sees = "verifier"

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, Any] | None:
        """N = b candidates, each one generation, scored by the study's verifier."""
        return {"num_seeds": budget.generations, "verifier": budget.verifier}

    def __init__(self, verifier: str, num_seeds: int = 16, seed_start: int = 0, batch_size: int = 8,
                 pick_seed: int = 0, budget_nfe: int | None = None, verifier_options: Mapping[str, Any] | None = None,
                 held_out: Sequence[str] | None = None, similarity: str = "cosine") -> None:
        super().__init__(similarity, seed_start, num_seeds)
        self.batch_size = integer_param("method.batch_size", batch_size, 1)
        self.pick_seed = integer_param("method.pick_seed", pick_seed, 0)
        self.budget_nfe = None if budget_nfe is None else integer_param("method.budget_nfe", budget_nfe, 1)
        check_held_out(verifier, list(held_out or ()))
        self.verifier_name = verifier
        self.verifier_options = dict(verifier_options or {})
        self.verifier: Evaluator = load_verifier(verifier, self.verifier_options)
        self.bank: BankSession | None = None

    def attach_bank(self, session: BankSession, evaluators: Mapping[str, Any]) -> None:
        if self.verifier_options:  # a stored score is named by the evaluator only: other options, other scores
            raise NoiseExpError("method=best_of_n reuses the bank's scores by evaluator name; with "
                                "method.verifier_options set they may come from another scorer: drop bank.path")
        print(f"warning: method=best_of_n only reads the bank {session.bank.path}: it reuses the candidates whose "
              f"{self.verifier_name} score it holds (stored by method=select method.score_candidates=true) and adds "
              f"none (a stored candidate needs its stability, which best_of_n does not compute)",
              file=sys.stderr, flush=True)
        self.bank = session

    def count(self, model: NoiseModel, cond: Conditioning) -> int:
        """N: `method.num_seeds`, or as many generations as `method.budget_nfe` buys."""
        if self.budget_nfe is None:
            return self.num_seeds
        from noise_exp.methods.differentiable import generation_nfe

        return budget_count("method.budget_nfe", self.budget_nfe, generation_nfe(model, cond), "generation")

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        seeds = self.candidate_seeds(self.count(model, cond))
        spent = {"passes": 0.0, "seconds": 0.0}
        generate = scored_generation(model, cond, lambda images, prompts: self.verifier.score(images, prompts=prompts),
                                     spent)
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if progress:
                progress(f"candidate {done[0]}/{len(seeds)}")

        known = self.bank.known(cond.prompt, seeds, {self.verifier_name: self.verifier.identity()}) if self.bank else {}
        for stored in known.values():  # what the reused candidates cost when they were computed
            spent["passes"] += stored.nfe_denoise
            spent["seconds"] += stored.seconds_denoise + stored.seconds_scoring
        result = best_of_n(seeds, generate, self.batch_size, random_position(self.pick_seed, prompt_index, len(seeds)),
                           {seed: stored.scores[self.verifier_name] for seed, stored in known.items()}, on_batch)
        total_nfe = int(round(spent["passes"]))
        one = total_nfe / len(seeds)
        variants = []
        for name, kept, nfe, seconds in (("best", result.best, total_nfe, spent["seconds"]),
                                         ("worst", result.worst, total_nfe, spent["seconds"]),
                                         ("random", result.random, one, spent["seconds"] / len(seeds))):
            if kept.latents is None:  # read from the bank: regenerate the kept seed for its image and noise
                noise, latents, _, _ = self.generation(model, cond, [kept.seed])
                kept.noise, kept.latents = noise[0], latents[0]
            variants.append(self.variant(name, kept.seed, NO_STABILITY, kept.noise, kept.latents, seconds, int(round(nfe))))
        return MethodOutput(variants)


class RandomPick(SeededCandidates):
    """The plain baseline at the same N: one generation from a seeded uniform pick among the N seeds."""

    name = "random"
    variants = (RANDOM,)
    main_variant = "random"
    compare_baseline = True

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, Any] | None:
        """N = b seeds to pick one from (one generation is spent)."""
        return {"num_seeds": budget.generations}

    def __init__(self, num_seeds: int = 16, seed_start: int = 0, pick_seed: int = 0, similarity: str = "cosine") -> None:
        super().__init__(similarity, seed_start, num_seeds)
        self.pick_seed = integer_param("method.pick_seed", pick_seed, 0)

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        seeds = self.candidate_seeds()
        seed = seeds[random_position(self.pick_seed, prompt_index, len(seeds))]
        noise, latents, passes, seconds = self.generation(model, cond, [seed])
        return MethodOutput([self.variant("random", seed, NO_STABILITY, noise[0], latents[0], seconds, passes)])
