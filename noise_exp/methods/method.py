"""The `method` config group: each class runs one of the paper's algorithms for one prompt.

They turn Algorithms 1 and 2 into named variants (stable, unstable, original, optimized, baseline);
writing files happens in `noise_exp.rundir`, never here.
"""
from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch

from noise_exp.candidates.session import BankSession
from noise_exp.errors import NoiseExpError
from noise_exp.params import choice_param, flag_param, integer_param, real_param
from noise_exp.methods.banked import run_selection
from noise_exp.methods.declaration import Budget, Comparison, Declaration, VariantSpec
from noise_exp.methods.optimization import OPTIMIZERS, OptimizationConfig, OptimizationResult, optimize_noise
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.selection import SelectionResult
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.similarity import get_similarity

Progress = Callable[[str], None]


def nested_params(key: str, given: Any, cls: type, excluded: Sequence[str]) -> dict[str, Any]:
    """A nested config dict (e.g. method.selection) checked against `cls`'s parameters, minus `excluded`."""
    if not isinstance(given, Mapping):
        raise NoiseExpError(f"{key} must be a mapping of parameters, got {given!r}")
    known = [name for name in inspect.signature(cls).parameters if name not in (*excluded, "config_key")]
    unknown = [name for name in given if name not in known]
    if unknown:
        raise NoiseExpError(f"unknown key(s) {', '.join(f'{key}.{name}' for name in unknown)}; known: {', '.join(known)}")
    return dict(given)


@dataclass
class Variant:
    name: str
    seed: int
    stability: float
    noise: torch.Tensor | None  # [C, H, W]; None for a variant read from a candidate bank (its seed draws it)
    latents: torch.Tensor | None  # [C, H, W] clean latents it denoises to
    time_s: float  # seconds of compute that produced it
    unet_calls: int  # NFEs that produced it: network passes per sample, CFG passes included
    norm_ratio: float = 1.0  # |noise| / |the noise it started from|: 1 unless optimized
    peak_memory_mb: float = float("nan")  # peak memory while its prompt ran (noise_exp.methods.compute.PeakMemory)
    scores: dict[str, float] = field(default_factory=dict)  # evaluator scores known when it is made (bank queries)


@dataclass
class MethodOutput:
    variants: list[Variant]
    selection_scores: list[tuple[int, float]] = field(default_factory=list)  # (seed, stability)
    trace: list[tuple[int, float, float]] = field(default_factory=list)  # (step, stability, lr[, reward])


# name -> class of every method class that declares its variants (noise_exp.methods.registry reads it)
REGISTRY: dict[str, type["Method"]] = {}


class Method(ABC):
    """One noise strategy; `run` handles one prompt. A subclass with a `name` declares the variants it keeps (report
    order), the comparisons its report shows and its main variant; it is registered when defined."""

    name: ClassVar[str] = "method"
    variants: ClassVar[tuple[VariantSpec, ...]] = ()
    comparisons: ClassVar[tuple[Comparison, ...]] = ()
    main_variant: ClassVar[str] = ""  # the variant whose mean stability a sweeper optimises
    sees: ClassVar[str | None] = None  # what it looks at when it picks: "stability", "verifier" or nothing
    report_rank: ClassVar[int] = 100  # registry order (the paper's methods first); others follow by name
    compare_baseline: ClassVar[bool] = False  # the equal-compute study's win rates are against this method

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, Any] | None:
        """The `method.*` settings that spend `budget` in the equal-compute study; None: the method sits out."""
        return None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # an abstract helper class (e.g. SeededCandidates): nothing to declare
        names = cls.variant_names()
        if not names or cls.main_variant not in names:
            raise TypeError(f"method {cls.name}: main_variant {cls.main_variant!r} is not among its variants {names}")
        known = {spec.name for other in REGISTRY.values() for spec in other.variants} | set(names)
        for comparison in cls.comparisons:
            if {comparison.a, comparison.b} - known:
                raise TypeError(f"method {cls.name}: comparison {comparison.key} names an undeclared variant")
        REGISTRY[cls.name] = cls

    @classmethod
    def variant_names(cls) -> tuple[str, ...]:
        return tuple(spec.name for spec in cls.variants)

    @classmethod
    def saved_variants(cls) -> list[str]:
        """The variants decoded to images/ when `save_images` is unset."""
        return [spec.name for spec in cls.variants if spec.saved]

    @classmethod
    def declaration(cls) -> Declaration:
        return Declaration(cls.name, cls.variants, cls.comparisons, cls.main_variant, cls.sees)

    def variant(self, name: str, *fields: Any, **named: Any) -> "Variant":
        """A kept noise of a declared variant (a method cannot produce an undeclared one)."""
        if name not in self.variant_names():
            raise ValueError(f"method {self.name} does not declare the variant {name!r} (declared: {self.variant_names()})")
        return Variant(name, *fields, **named)

    def __init__(self, similarity: str = "cosine", seed_start: int = 0, num_seeds: int = 100,
                 config_key: str = "method") -> None:
        self.similarity_name = similarity
        self.similarity = get_similarity(similarity)
        self.seed_start = integer_param(f"{config_key}.seed_start", seed_start, 0)
        self.num_seeds = integer_param(f"{config_key}.num_seeds", num_seeds, 1)

    def prompt_seed(self, prompt_index: int) -> int:
        """The one seed a single-noise method uses for the i-th prompt: seed_start + i mod K (paper: 0..99)."""
        return self.seed_start + prompt_index % self.num_seeds

    @abstractmethod
    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        """Run the method for one prompt."""

    @property
    def scores_candidates(self) -> bool:
        """Whether every candidate is decoded and scored (`method.score_candidates`), which needs a bank."""
        return False

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Refuse (NoiseExpError) a run whose flat result settings, with the weights' identity, this method cannot
        serve (e.g. a seed prior measured on another model); called once the model is loaded, before any prompt."""

    def attach_bank(self, session: BankSession, evaluators: Mapping[str, Any]) -> None:
        """Read and fill a candidate bank (`bank.path`); `evaluators` score the candidates when asked to."""
        raise NoiseExpError(f"bank.path is for the methods that draw candidates (select, select_optimize), "
                            f"not method={self.name}")


UNSTABLE = VariantSpec("unstable", "Unstable noise", "reference")
STABLE = VariantSpec("stable", "Stable noise", "kept")
ORIGINAL = VariantSpec("original", "Original noise", "reference", paper_label="Original Noise")


class NoiseSelection(Method):
    """Algorithm 1 over seeds seed_start .. seed_start+K-1; keeps the stable (argmax) and unstable (argmin) noise."""

    name = "select"
    variants = (UNSTABLE, STABLE)
    comparisons = (Comparison("stable", "unstable"),)
    main_variant = "stable"
    sees = "stability"
    report_rank = 0

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, Any] | None:
        """K = max(1, floor(bG / R)) candidates."""
        return {"num_seeds": budget.roundtrips}

    def __init__(self, num_seeds: int = 100, seed_start: int = 0, batch_size: int = 8, similarity: str = "cosine",
                 seeds_per_prompt: bool = False, score_candidates: bool = False, config_key: str = "method") -> None:
        super().__init__(similarity, seed_start, num_seeds, config_key)
        self.batch_size = integer_param(f"{config_key}.batch_size", batch_size, 1)
        self.seeds_per_prompt = flag_param(f"{config_key}.seeds_per_prompt", seeds_per_prompt)
        self.score_candidates = flag_param(f"{config_key}.score_candidates", score_candidates)
        self.bank: BankSession | None = None
        self.evaluators: dict[str, Any] = {}

    @property
    def scores_candidates(self) -> bool:
        return self.score_candidates

    def attach_bank(self, session: BankSession, evaluators: Mapping[str, Any]) -> None:
        self.bank = session
        self.evaluators = dict(evaluators) if self.score_candidates else {}

    def candidate_seeds(self, prompt_index: int) -> range:
        """Seeds seed_start .. seed_start+K-1 for every prompt (the paper), or a disjoint block of K per prompt id
        (`seeds_per_prompt`: repeated prompts then sample fresh candidates)."""
        first = self.seed_start + (prompt_index * self.num_seeds if self.seeds_per_prompt else 0)
        return range(first, first + self.num_seeds)

    def select(self, model: NoiseModel, cond: Conditioning, progress: Progress | None = None,
               prompt_index: int = 0) -> tuple[SelectionResult, float]:
        seeds = self.candidate_seeds(prompt_index)
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if progress:
                progress(f"seed {done[0]}/{self.num_seeds}")

        # with a bank, known candidates are read, the others computed and stored
        return run_selection(seeds, model, cond, self.similarity_name, self.batch_size, self.bank, self.evaluators,
                             on_batch)

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        result, seconds = self.select(model, cond, progress, prompt_index)
        return MethodOutput(variants=selection_variants(self, result, seconds, self.num_seeds * model.unet_calls_per_roundtrip),
                            selection_scores=list(zip(result.seeds, result.scores.tolist())))


class NoiseOptimization(Method):
    """Algorithm 2 from the prompt's seed; keeps the original and the optimized noise."""

    name = "optimize"
    variants = (ORIGINAL, VariantSpec("optimized", "Optimized noise", "kept", starts_from="original",
                                      paper_label="Opti. Noise"))
    comparisons = (Comparison("optimized", "original"),)
    main_variant = "optimized"
    sees = "stability"
    report_rank = 1

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, Any] | None:
        """n = K - 1 steps from the prompt's first seed, at Algorithm 2's lr for that n (the paper's total move)."""
        from noise_exp.methods.optimization import paper_equivalent_lr

        steps = budget.roundtrips - 1
        return {"steps": steps, "lr": round(paper_equivalent_lr(budget.latent_dim, max(1, steps)), 4), "num_seeds": 1}

    def __init__(self, steps: int = 100, lr: float = 100.0, momentum: float = 0.5, lr_schedule: str = "cosine",
                 optimizer: str = "sgd", keep_best: bool = False, early_stop_tol: float | None = None,
                 anderson_memory: int = 5, seed_start: int = 0, num_seeds: int = 100, similarity: str = "cosine", config_key: str = "method") -> None:
        super().__init__(similarity, seed_start, num_seeds, config_key)
        self.config = OptimizationConfig(
            steps=integer_param(f"{config_key}.steps", steps, 0),
            lr=real_param(f"{config_key}.lr", lr, 0.0),
            momentum=real_param(f"{config_key}.momentum", momentum, 0.0, below=1.0),
            lr_schedule=choice_param(f"{config_key}.lr_schedule", lr_schedule, ("cosine", "constant")),
            optimizer=choice_param(f"{config_key}.optimizer", optimizer, OPTIMIZERS),
            keep_best=flag_param(f"{config_key}.keep_best", keep_best),
            anderson_memory=integer_param(f"{config_key}.anderson_memory", anderson_memory, 0),
            early_stop_tol=None if early_stop_tol is None else real_param(f"{config_key}.early_stop_tol", early_stop_tol, 0.0))

    def optimize(self, model: NoiseModel, cond: Conditioning, seed: int, noise: torch.Tensor,
                 progress: Progress | None = None) -> tuple[OptimizationResult, float]:
        def on_step(step: int, score: torch.Tensor) -> None:
            if progress:
                progress(f"step {step + 1}/{self.config.steps} s={float(score.mean()):.5f}")

        start = time.perf_counter()
        result = optimize_noise(noise, [seed], ModelRoundTrip(model, cond), self.config, self.similarity, on_step)
        return result, time.perf_counter() - start

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        seed = self.prompt_seed(prompt_index)
        result, seconds = self.optimize(model, cond, seed, model.draw_noise([seed]), progress)
        calls = model.unet_calls_per_roundtrip
        variants = [
            self.variant("original", seed, float(result.original_stability[0]), result.original_noise[0], result.original_latents[0],
                    seconds / (result.steps_run + 1), calls),
            self.variant("optimized", seed, float(result.optimized_stability[0]), result.optimized_noise[0],
                    result.optimized_latents[0], seconds, (result.steps_run + 1) * calls, float(result.norm_ratio[0])),
        ]
        return MethodOutput(variants=variants, trace=trace_rows(result))


class SelectThenOptimize(Method):
    """Beyond the paper: Algorithm 1, then Algorithm 2 from the selected stable noise."""

    name = "select_optimize"
    variants = (UNSTABLE, STABLE, VariantSpec("optimized", "Optimized noise", "kept", starts_from="stable",
                                              paper_label="Opti. Noise"))
    comparisons = (Comparison("stable", "unstable"), Comparison("optimized", "stable"))
    main_variant = "optimized"
    sees = "stability"

    def __init__(self, selection: Mapping[str, Any], optimization: Mapping[str, Any], similarity: str = "cosine") -> None:
        # candidates are scored by method=select only (method.score_candidates); here the bank keeps stabilities
        self.selection = NoiseSelection(**nested_params("method.selection", selection, NoiseSelection,
                                                        ["similarity", "score_candidates"]),
                                        similarity=similarity, config_key="method.selection")
        # the optimization starts from the selected noise, so it has no seeds of its own
        self.optimization = NoiseOptimization(
            **nested_params("method.optimization", optimization, NoiseOptimization, ["similarity", "seed_start", "num_seeds"]),
            similarity=similarity, config_key="method.optimization")
        super().__init__(similarity, self.selection.seed_start, self.selection.num_seeds)

    def attach_bank(self, session: BankSession, evaluators: Mapping[str, Any]) -> None:
        self.selection.attach_bank(session, evaluators)

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        selected, select_s = self.selection.select(model, cond, progress, prompt_index)
        stable = selected.stable
        optimized, optimize_s = self.optimization.optimize(model, cond, stable.seed, stable.noise[None], progress)
        select_calls = self.selection.num_seeds * model.unet_calls_per_roundtrip
        variants = selection_variants(self, selected, select_s, select_calls)
        variants.append(self.variant("optimized", stable.seed, float(optimized.optimized_stability[0]), optimized.optimized_noise[0],
                                optimized.optimized_latents[0], select_s + optimize_s,
                                select_calls + (optimized.steps_run + 1) * model.unet_calls_per_roundtrip,
                                float(optimized.norm_ratio[0])))
        return MethodOutput(variants=variants, selection_scores=list(zip(selected.seeds, selected.scores.tolist())),
                            trace=trace_rows(optimized))


class Baseline(Method):
    """Plain generation from the prompt's seed (one roundtrip, to report its stability)."""

    name = "baseline"
    variants = (VariantSpec("baseline", "Baseline", "kept"),)
    comparisons = (Comparison("stable", "baseline"), Comparison("optimized", "baseline"))
    main_variant = "baseline"
    report_rank = 2

    def __init__(self, seed_start: int = 0, num_seeds: int = 100, similarity: str = "cosine") -> None:
        super().__init__(similarity, seed_start, num_seeds)

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        seed = self.prompt_seed(prompt_index)
        start = time.perf_counter()
        noise = model.draw_noise([seed])
        latents, inverted = ModelRoundTrip(model, cond)(noise, [seed])
        score = float(self.similarity(noise, inverted)[0])
        return MethodOutput([self.variant("baseline", seed, score, noise[0], latents[0], time.perf_counter() - start,
                                     model.unet_calls_per_roundtrip)])


def selection_variants(method: Method, result: SelectionResult, seconds: float, unet_calls: int) -> list[Variant]:
    """The stable and unstable candidates of a selection as `method`'s variants."""
    return [method.variant(kind, c.seed, c.stability, c.noise, c.latents, seconds, unet_calls)
            for kind, c in (("stable", result.stable), ("unstable", result.unstable))]


def trace_rows(result: OptimizationResult) -> list[tuple[int, float, float]]:
    """(step, stability, lr) of each step of a one-noise Algorithm 2 (the run's trace, nx.optimize's `trace`)."""
    return [(row.step, row.stability[0], row.lr) for row in result.trace]


def validate_variants(names: Sequence[str], declared: Sequence[str] = ()) -> list[str]:
    """Check user-given variant names (e.g. `save_images`) against those every registered method declares (and
    `declared`: the running method's, which may live outside conf/method)."""
    from noise_exp.methods.registry import known_variants

    known = list(dict.fromkeys([*known_variants(), *declared]))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise NoiseExpError(f"unknown variant(s) {unknown}; known variants are {known}")
    return list(names)
