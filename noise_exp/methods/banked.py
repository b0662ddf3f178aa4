"""Algorithm 1 with the candidate bank around it (docs/candidate_bank.md).

Before `select_noise`: the seeds whose candidates the bank already holds are read, not recomputed. During it: the
round trip F is wrapped so that each computed candidate is recorded (its stability under every similarity, its
network passes and seconds, and with `method.score_candidates` its decoded image's scores). After it: the argmax
and argmin over all K seeds are kept; a kept seed that came from the bank is regenerated from its seed (its noise
is `draw_noise([seed])`, its latents one denoising pass). `select_noise` itself is untouched.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch

from noise_exp.candidates.session import BankSession
from noise_exp.candidates.storage import StoredCandidate
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.selection import Candidate, SelectionResult, select_noise
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.similarity import SIMILARITIES, get_similarity

if TYPE_CHECKING:
    from noise_exp.evaluators.base import Evaluator


@dataclass
class RecordingRoundTrip:
    """F(eps) as `select_noise` sees it, recording each candidate it computes for the bank."""

    roundtrip: ModelRoundTrip
    session: BankSession
    evaluators: Mapping[str, "Evaluator"] = field(default_factory=dict)  # non-empty: decode and score every candidate
    recorded: list[StoredCandidate] = field(default_factory=list)

    def __call__(self, noise: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.roundtrip.model
        with NetworkPasses(model.network) as passes:
            start = time.perf_counter()
            latents = self.roundtrip.denoise(noise, seeds)
            denoise_passes, denoise_s = passes.count, time.perf_counter() - start
            inverted = self.roundtrip.invert(latents, seeds)
            seconds = time.perf_counter() - start
            total_passes = passes.count
        similarities = {name: fn(noise, inverted).float().cpu() for name, fn in SIMILARITIES.items()}
        scores, images, scoring_s = self._score(latents, seeds)
        n = len(seeds)
        for index, seed in enumerate(seeds):
            self.recorded.append(StoredCandidate(
                prompt=self.roundtrip.cond.prompt, seed=int(seed),
                stability={name: float(values[index]) for name, values in similarities.items()},
                nfe=total_passes / n, nfe_denoise=denoise_passes / n, seconds=seconds / n,
                seconds_denoise=denoise_s / n, seconds_scoring=scoring_s / n if self.evaluators else float("nan"),
                scores={name: float(values[index]) for name, values in scores.items()}, image=images[index],
                device=str(model.device), scorers={name: self.evaluators[name].identity() for name in scores}))
        return latents, inverted

    def _score(self, latents: torch.Tensor, seeds: Sequence[int]) -> tuple[dict[str, torch.Tensor], list[str], float]:
        """Decode the batch once and score it with every evaluator; images go to the bank when it keeps them."""
        if not self.evaluators:
            return {}, [""] * len(seeds), 0.0
        start = time.perf_counter()
        cond = self.roundtrip.cond
        pictures = self.roundtrip.model.decode(latents, cond)
        prompts = [cond.prompt] * len(pictures)
        scores = {name: evaluator.score(pictures, prompts=prompts) for name, evaluator in self.evaluators.items()}
        seconds = time.perf_counter() - start
        paths = [self.session.save_image(cond.prompt, seed, _png(picture)) if self.session.keep_images else ""
                 for seed, picture in zip(seeds, pictures)]
        return scores, paths, seconds


def _png(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class BankedSelection:
    result: SelectionResult  # over all K seeds, reused or computed
    seconds: float  # the compute the K candidates cost when they were computed (now or earlier)


def select_with_bank(seeds: Sequence[int], model: NoiseModel, cond: Conditioning, session: BankSession,
                     similarity: str, batch_size: int, evaluators: Mapping[str, "Evaluator"] | None = None,
                     on_batch: Callable[[int], None] | None = None,
                     on_candidate: Callable[[int, float], None] | None = None) -> BankedSelection:
    """Algorithm 1 over `seeds`, computing only the candidates the bank lacks (or lacks the evaluators' scores of)."""
    seeds, evaluators = [int(s) for s in seeds], dict(evaluators or {})
    known = session.known(cond.prompt, seeds, {name: e.identity() for name, e in evaluators.items()})
    if on_candidate is not None:
        for seed in (s for s in seeds if s in known):
            on_candidate(seed, known[seed].stability[similarity])
    if known and on_batch is not None:
        on_batch(len(known))
    todo = [s for s in seeds if s not in known]
    roundtrip = ModelRoundTrip(model, cond)
    recorder = RecordingRoundTrip(roundtrip, session, evaluators)
    try:
        fresh = select_noise(todo, model.draw_noise, recorder, batch_size, get_similarity(similarity), on_batch,
                             on_candidate) if todo else None
    finally:  # an error or Ctrl-C midway keeps the candidates already computed
        session.add(recorder.recorded)
    every = {**known, **{c.seed: c for c in recorder.recorded}}
    scores = torch.tensor([every[s].stability[similarity] for s in seeds], dtype=torch.float32)

    def kept(seed: int) -> Candidate:
        for candidate in ((fresh.stable, fresh.unstable) if fresh else ()):
            if candidate.seed == seed:
                return candidate
        noise = model.draw_noise([seed])
        return Candidate(seed, every[seed].stability[similarity], noise[0], roundtrip.denoise(noise, [seed])[0])

    result = SelectionResult(seeds=seeds, scores=scores, stable=kept(seeds[int(scores.argmax())]),
                             unstable=kept(seeds[int(scores.argmin())]))
    return BankedSelection(result, sum(every[s].seconds for s in seeds))


def run_selection(seeds: Sequence[int], model: NoiseModel, cond: Conditioning, similarity: str, batch_size: int,
                  session: BankSession | None = None, evaluators: Mapping[str, "Evaluator"] | None = None,
                  on_batch: Callable[[int], None] | None = None,
                  on_candidate: Callable[[int, float], None] | None = None) -> tuple[SelectionResult, float]:
    """Algorithm 1 over `seeds` with the bank when there is one (known candidates read, the others computed and
    stored), else `select_noise` alone; with the seconds the K candidates cost. `method=select` and `nx.select` call it."""
    if session is not None:
        banked = select_with_bank(seeds, model, cond, session, similarity, batch_size, evaluators, on_batch, on_candidate)
        return banked.result, banked.seconds
    start = time.perf_counter()
    result = select_noise(seeds, model.draw_noise, ModelRoundTrip(model, cond), batch_size, get_similarity(similarity),
                          on_batch, on_candidate)
    return result, time.perf_counter() - start
