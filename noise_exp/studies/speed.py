"""Cheaper selection and faster optimization measured against the exact ones on the trained small models (issue 16).

    python -m noise_exp.studies speed [out=outputs/speed_study] [models=[small_digits,small_shapes]] [prompts=24]
        [seeds=32] [shortlists=[1,2,3,4,8]] [proxies=[...]] [opt_prompts=8] [inversion_seeds=8] [parts=[...]]
        [optimizers=[...]] [threads=1] [quick=true]

Knobs and their values: conf/study/speed.yaml.

Selection, per model: prompt i (the first `prompts` of dataset=digits / shapes_bench) draws seeds i*K .. i*K+K-1
(fresh candidates for repeated captions). Every candidate's exact s(eps) (eq. 2 inversion), each proxy's score and the
judge's score of its decoded image are computed once; a short list of M is then a query: the chosen seed is the exact
argmax among the proxy's best M. Reported per (proxy, M): agreement of the chosen seed with the exact argmax of all K,
Spearman rho of proxy vs exact (mean over prompts), the judge's mean score of the chosen seed, and the cost
(K x proxy NFEs + M x exact NFEs) / (K x exact NFEs) and the measured seconds ratio. `fixed_point:3` is the exact
score under the fixed-point inversion (model.inversion=fixed_point, 3 calls per step): not cheaper, it measures how
much the ranking depends on the inversion. `norm` and `lowfreq:2` (issue 24) score the noise itself: no NFEs.

Optimization, per model: the first `opt_prompts` prompts, seed = the prompt's first candidate, all in one batch.
The paper's SGD (momentum 0.5, cosine, 100 steps) runs at the paper's step relative to the noise
(lr = 100 d / (4 x 128 x 128), d the latent size; see the reproduce_small study); its gain s_100 - s_0 per sample
is the target. Each optimizer (sgd, adam, nesterov, anderson) then runs 20 cosine steps at 1x and 5x that lr; reported:
the median steps to reach s_0 + gain (samples whose SGD gain is positive), the fraction reaching it within 20 steps,
the mean gain, the mean norm ratio |eps_20| / |eps_0|, and the judge's mean score of the returned noise (vs the
original and SGD-100's).
Judges: shapes_geneval (exact, 0/1) for small_shapes, digit_classifier (p of the requested digit) for small_digits.

Inversion, per model: the relative error |eps' - eps| / |eps| of a round trip under eq. (2) and under the fixed-point
inversion with 2, 3, 6 and 10 calls per step, at the config's guidance (inverting unguided, the paper's setting) and
with guidance 1 both ways (one ODE, which an exact inversion would reconstruct), on `inversion_seeds` seeds of the
first prompt.

`parts` picks the parts (default all three). Writes results.json and table.md under `out`.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from noise_exp.bank.decompose import mean_pairwise_spearman
from noise_exp.config import PROJECT_ROOT as ROOT
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes, writable_folder
from noise_exp.methods.optimization import OPTIMIZERS, paper_equivalent_lr
from noise_exp.params import integer_param
from noise_exp.training.common import training_id

JUDGES = {"small_digits": ("digits", "digit_classifier"), "small_shapes": ("shapes_bench", "shapes_geneval")}
PROXIES = ("partial:1", "partial:2", "steps:2", "steps:3", "resolution:2", "fixed_point:3", "norm", "lowfreq:2")
FAST_STEPS = 20
INVERSION_ITERATIONS = (2, 3, 6, 10)
PARTS = ("selection", "optimization", "inversion")


@dataclass
class Config:
    """conf/study/speed.yaml."""

    out: Path
    models: list[str]  # of JUDGES
    prompts: int  # prompts per model for selection
    seeds: int  # K candidates per prompt
    shortlists: list[int]  # short-list sizes M
    proxies: list[str]  # proxies of s(eps) to score (of PROXIES)
    opt_prompts: int  # prompts (one seed each) for optimization
    inversion_seeds: int  # seeds of the inversion part
    parts: list[str]  # of PARTS
    optimizers: list[str]  # of OPTIMIZERS
    threads: int


@dataclass
class PromptCandidates:
    """One prompt's K candidates: exact stabilities, judge scores, and each proxy's scores (seed order)."""

    exact: torch.Tensor
    judge: torch.Tensor
    proxies: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class SelectionRow:
    model: str
    proxy: str
    shortlist: int
    agreement: float  # fraction of prompts whose chosen seed is the exact argmax of all K
    spearman: float  # mean over prompts of rho(proxy, exact)
    judge: float  # judge's mean score of the chosen seeds
    nfe_ratio: float  # (K proxy + M exact) / (K exact)
    seconds_ratio: float  # the same with measured seconds per candidate


@dataclass
class OptimizationRow:
    model: str
    optimizer: str
    lr: float
    steps: int
    reached: float  # fraction of the samples with a positive SGD-100 gain that reach it within `steps`
    median_steps: float | None  # median steps to reach it (among those that do)
    gain: float  # mean s_final - s_0
    norm_ratio: float  # mean |eps_final| / |eps_0|: a gain bought by leaving the Gaussian shell shows here
    judge: float  # judge's mean score of the returned noise


def load(model_name: str, *overrides: str):
    from noise_exp.config import compose_config
    from noise_exp.runner import build

    dataset, judge = JUDGES[model_name]
    cfg = compose_config([f"model={model_name}", "model.device=cpu", f"dataset={dataset}", f"evaluator=[{judge}]",
                          *overrides])
    return build(cfg.model, "model"), build(cfg.dataset, "dataset"), build(cfg.evaluator[judge], "evaluator")


def score_candidates(model, fixed_point, cond, seeds: Sequence[int], judge, seconds: dict[str, float],
                     proxies: Sequence[str] = PROXIES) -> PromptCandidates:
    from noise_exp.methods.roundtrip import ModelRoundTrip
    from noise_exp.methods.seed_proxies import build_scorer, parse_any_proxy
    from noise_exp.similarity import stability

    noise = model.draw_noise(seeds)
    start = time.perf_counter()
    latents, inverted = ModelRoundTrip(model, cond)(noise, seeds)
    seconds["exact"] += time.perf_counter() - start
    candidates = PromptCandidates(stability(noise, inverted), judge.score(model.decode(latents), [cond.prompt] * len(seeds)))
    for name in proxies:
        start = time.perf_counter()
        if name.startswith("fixed_point"):
            candidates.proxies[name] = stability(noise, ModelRoundTrip(fixed_point, cond)(noise, seeds)[1])
        else:
            candidates.proxies[name] = build_scorer(parse_any_proxy(name), model, cond)(noise, seeds)
        seconds[name] += time.perf_counter() - start
    return candidates


def proxy_nfes(model, fixed_point, name: str) -> int:
    from noise_exp.methods.seed_proxies import NoiseProxy, parse_any_proxy

    if name.startswith("fixed_point"):
        return fixed_point.unet_calls_per_roundtrip
    proxy = parse_any_proxy(name)
    return 0 if isinstance(proxy, NoiseProxy) else proxy.view(model).unet_calls_per_roundtrip


def selection_rows(model_name: str, model, fixed_point, prompts: list[PromptCandidates], shortlists: Sequence[int],
                   seconds: dict[str, float], proxies: Sequence[str] = PROXIES) -> list[SelectionRow]:
    from noise_exp.methods.select_fast import shortlist_indices

    exact_nfes = model.unet_calls_per_roundtrip
    rows = [SelectionRow(model_name, "exact (select)", len(prompts[0].exact), 1.0, 1.0,
                         statistics.fmean(float(p.judge[int(p.exact.argmax())]) for p in prompts), 1.0, 1.0),
            SelectionRow(model_name, "random seed", 1, statistics.fmean(1.0 / len(p.exact) for p in prompts), 0.0,
                         statistics.fmean(float(p.judge.mean()) for p in prompts), 0.0, 0.0)]
    for name in proxies:
        rho = statistics.fmean(mean_pairwise_spearman(torch.stack([p.proxies[name].double(), p.exact.double()]).numpy())
                               for p in prompts)
        nfes = proxy_nfes(model, fixed_point, name)
        for m in shortlists:
            chosen = []
            for p in prompts:
                checked = shortlist_indices(p.proxies[name], m, 0)
                chosen.append(checked[int(p.exact[checked].argmax())])
            agreement = statistics.fmean(float(c == int(p.exact.argmax())) for c, p in zip(chosen, prompts))
            judge = statistics.fmean(float(p.judge[c]) for c, p in zip(chosen, prompts))
            k = len(prompts[0].exact)
            nfe_ratio = (k * nfes + m * exact_nfes) / (k * exact_nfes)
            seconds_ratio = (seconds[name] + m / k * seconds["exact"]) / seconds["exact"]
            rows.append(SelectionRow(model_name, name, m, agreement, rho, judge, nfe_ratio, seconds_ratio))
    return rows


def stacked_conditioning(model, texts: Sequence[str]):
    """One conditioning for a batch whose i-th sample has prompt i (each tensor stacked over the prompts)."""
    from noise_exp.models.base import Conditioning

    conds = [model.encode_prompt(text) for text in texts]
    return Conditioning(" | ".join(texts), {key: torch.cat([c.tensors[key] for c in conds]) for key in conds[0].tensors})


def optimization_rows(model_name: str, model, judge, texts: Sequence[str], seeds: Sequence[int],
                      optimizers: Sequence[str] = OPTIMIZERS) -> tuple[list, dict]:
    from noise_exp.methods.optimization import OptimizationConfig, optimize_noise
    from noise_exp.methods.roundtrip import ModelRoundTrip

    cond = stacked_conditioning(model, texts)
    roundtrip = ModelRoundTrip(model, cond)
    noise = model.draw_noise(seeds)
    size = noise[0].numel()
    paper_lr = paper_equivalent_lr(size)

    def run(optimizer: str, lr: float, steps: int):
        config = OptimizationConfig(steps=steps, lr=lr, momentum=0.5, lr_schedule="cosine", optimizer=optimizer)
        result = optimize_noise(noise, seeds, roundtrip, config)
        scores = judge.score(model.decode(result.optimized_latents), list(texts))
        return result, scores

    start = time.perf_counter()
    reference, reference_judge = run("sgd", paper_lr, 100)
    original_judge = judge.score(model.decode(reference.original_latents), list(texts))
    s0 = reference.original_stability
    target_gain = reference.optimized_stability - s0
    improving = [i for i in range(len(seeds)) if float(target_gain[i]) > 0]
    rows = [OptimizationRow(model_name, "sgd (paper)", paper_lr, 100, 1.0, None, float(target_gain.mean()),
                            float(reference.norm_ratio.mean()), float(reference_judge.mean()))]
    for optimizer in optimizers:
        for factor in (1, 5):
            result, scores = run(optimizer, factor * paper_lr, FAST_STEPS)
            trace = torch.tensor([row.stability for row in result.trace])  # [steps + 1, samples]
            reached = [next((step for step in range(len(trace)) if trace[step, i] >= s0[i] + target_gain[i]), None)
                       for i in improving]
            hits = [step for step in reached if step is not None]
            rows.append(OptimizationRow(model_name, optimizer, factor * paper_lr, FAST_STEPS,
                                        len(hits) / max(1, len(improving)), statistics.median(hits) if hits else None,
                                        float((result.optimized_stability - s0).mean()),
                                        float(result.norm_ratio.mean()), float(scores.mean())))
    facts = {"samples": len(seeds), "improving": len(improving), "paper_lr": paper_lr, "latent_size": size,
             "original_stability": float(s0.mean()), "original_judge": float(original_judge.mean()),
             "seconds": round(time.perf_counter() - start, 1)}
    return rows, facts


def inversion_errors(model_name: str, text: str, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Relative reconstruction error of eq. (2) and of the fixed-point inversion, at two guidance settings."""
    rows = []
    for guidance in ((), ("model.guidance_scale=1", "model.inversion_guidance_scale=1")):
        for iterations in (1, *INVERSION_ITERATIONS):
            inversion = ("model.inversion=fixed_point", f"model.inversion_iterations={iterations}") if iterations > 1 else ()
            model, _, _ = load(model_name, *guidance, *inversion)
            cond = model.encode_prompt(text)
            noise = model.draw_noise(seeds)
            inverted = model.invert(model.denoise(noise, cond), cond)
            error = (inverted - noise).flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1)
            rows.append({"model": model_name, "guidance": model.guidance_scale,
                         "inversion_guidance": model.inversion_guidance_scale, "calls_per_step": iterations,
                         "nfes": model.unet_calls_per_roundtrip, "relative_error": float(error.mean())})
    return rows


def study_model(model_name: str, args: Config) -> dict[str, Any]:
    model, dataset, judge = load(model_name)
    prompts = dataset.load()[:args.prompts]
    k = args.seeds
    weights = ROOT / "weights" / model_name.replace("_", "-")
    result: dict[str, Any] = {"model": model_name, "weights": training_id(weights), "prompts": len(prompts),
                              "seeds": k, "exact_nfes": model.unet_calls_per_roundtrip}
    if "inversion" in args.parts:
        result["inversion"] = inversion_errors(model_name, prompts[0].text, range(args.inversion_seeds))
    if "selection" in args.parts:
        result.update(study_selection(model_name, model, judge, prompts, args))
    if "optimization" in args.parts:
        opt_prompts = prompts[:args.opt_prompts]
        optimization, facts = optimization_rows(model_name, model, judge, [p.text for p in opt_prompts],
                                                [index * k for index in range(len(opt_prompts))], args.optimizers)
        print(f"{model_name}: optimization ({facts['seconds']:.0f}s)", flush=True)
        result.update({"optimization": [asdict(row) for row in optimization], "optimization_facts": facts})
    return result


def study_selection(model_name: str, model, judge, prompts, args: Config) -> dict[str, Any]:
    fixed_point, _, _ = load(model_name, "model.inversion=fixed_point", "model.inversion_iterations=3")
    k = args.seeds
    seconds = {name: 0.0 for name in ("exact", *args.proxies)}
    start = time.perf_counter()
    candidates = []
    for index, prompt in enumerate(prompts):
        seeds = range(index * k, index * k + k)
        candidates.append(score_candidates(model, fixed_point, model.encode_prompt(prompt.text), seeds, judge, seconds,
                                           args.proxies))
        print(f"{model_name}: prompt {index + 1}/{len(prompts)} ({time.perf_counter() - start:.0f}s)", flush=True)
    selection = selection_rows(model_name, model, fixed_point, candidates, args.shortlists, seconds, args.proxies)
    return {"selection_seconds": round(time.perf_counter() - start, 1),
            "proxy_seconds": {name: round(value, 2) for name, value in seconds.items()},
            "mean_exact_stability": statistics.fmean(float(c.exact.mean()) for c in candidates),
            "selection": [asdict(row) for row in selection]}


def format_tables(results: list[dict[str, Any]], threads: int) -> str:
    lines = []
    for result in results:
        lines += [f"### {result['model']} (weights training.json sha256 {result['weights']}; exact round trip "
                  f"{result['exact_nfes']} NFEs; {threads} torch thread(s))", ""]
        if "inversion" in result:
            lines += ["| guidance (denoise / invert) | calls per inversion step | NFEs per round trip | "
                      "relative error of eps' |", "|---|---:|---:|---:|"]
            lines += [f"| {row['guidance']:g} / {row['inversion_guidance']:g} | {row['calls_per_step']} | {row['nfes']} | "
                      f"{row['relative_error']:.4f} |" for row in result["inversion"]]
            lines.append("")
        if "selection" in result:
            lines += [f"Selection: {result['prompts']} prompts x K = {result['seeds']}, {result['selection_seconds']:.0f} s.",
                      "", "| proxy | M | same seed as exact | Spearman rho | judge of chosen | NFE ratio | seconds ratio |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {row['proxy']} | {row['shortlist']} | {row['agreement']:.2f} | {row['spearman']:.2f} | "
                      f"{row['judge']:.3f} | {row['nfe_ratio']:.2f} | {row['seconds_ratio']:.2f} |"
                      for row in result["selection"]]
            lines.append("")
        if "optimization" not in result:
            continue
        facts = result["optimization_facts"]
        lines += [f"Optimization: {facts['samples']} prompts x 1 seed, latent size d = {facts['latent_size']}, "
                  f"paper-equivalent lr {facts['paper_lr']:.3g}; SGD-100 raised stability on {facts['improving']} of "
                  f"{facts['samples']}; original mean s = {facts['original_stability']:.4f}, judge "
                  f"{facts['original_judge']:.3f}; {facts['seconds']:.0f} s.", "",
                  "| optimizer | lr | steps | reach SGD-100 gain | median steps to it | mean gain | norm ratio | judge |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in result["optimization"]:
            median = "-" if row["median_steps"] is None else f"{row['median_steps']:g}"
            lines.append(f"| {row['optimizer']} | {row['lr']:.3g} | {row['steps']} | {row['reached']:.2f} | {median} | "
                         f"{row['gain']:.4f} | {row['norm_ratio']:.3f} | {row['judge']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def check_config(config: Config) -> None:
    """A one-line error for the first bad knob, before any work."""
    for key in ("threads", "prompts", "seeds", "opt_prompts", "inversion_seeds"):
        integer_param(key, getattr(config, key), 1)
    for size in config.shortlists:
        integer_param("shortlists", size, 1)
    for key, known in (("models", JUDGES), ("proxies", PROXIES), ("parts", PARTS), ("optimizers", OPTIMIZERS)):
        unknown = [value for value in getattr(config, key) if value not in known]
        if unknown:
            raise NoiseExpError(f"{key}: {', '.join(unknown)}; choose among {', '.join(known)}")
    writable_folder(config.out, "out")


def run(config: Config, command: str) -> int:
    """Each model's parts; results.json and table.md rewritten after each model."""
    check_config(config)
    torch.set_num_threads(config.threads)
    start = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in config.models:  # written after each model, so a long study keeps what it finished
        results.append(study_model(name, config))
        table = format_tables(results, config.threads)
        atomic_write_bytes(config.out / "results.json", (json.dumps({"results": results, "seconds": round(
            time.perf_counter() - start, 1)}, indent=1) + "\n").encode())
        atomic_write_bytes(config.out / "table.md", table.encode())
    print(table)
    print(f"speed study: {time.perf_counter() - start:.0f}s; {config.out / 'table.md'}")
    return 0

