"""How much of s(eps) belongs to the seed alone, and selection by a seed prior or the noise's norm (issue 24).

    python -m noise_exp.studies seed_share [models=[small_digits,small_shapes,tiny_sdxl,small_shapes_l]] [seeds=100]
        [calibration=N] [test=N] [shortlists=[1,2,3,5,10]] [bootstrap=1000] [model_override=['model.dtype=float16']]
        [out=outputs/seed_share] [threads=1] [quick=true]
    make seed-share                        # the four models below: 35 min on 2 shared CPU cores (load ~6.6)
    make seed-share MODEL=sdxl_turbo       # a real model (GPU): drawbench calibrates, pickapic tests, no judge
                                           # (16 + 32 prompts x 100 seeds, batches of 8)

Per model and per guidance (the config's, and 1 when the config's guides: CFG > 1):
1. `method=select` with K seeds 0..K-1 shared by every prompt, `bank.path=<out>/<model>/bank`, on the calibration
   prompts and on the test prompts (test candidates are decoded and judged at the config's guidance). Texts are
   distinct within each set and the two sets share none (the calibration set skips the test texts). A rerun reuses the
   bank: nothing is recomputed.
2. `python -m noise_exp.bank decompose` on the bank (all prompts of that scope): shares of var(s) from seed, prompt
   and the rest, with 95% bootstrap intervals over prompts and seeds, and the mean pairwise Spearman of the prompts'
   seed rankings.
3. `python -m noise_exp.bank prior <calibration run> --out prior_g<g>.json`, then, from the test candidates alone,
   the exact argmax among the best M of each proxy: the prior, `norm`, `lowfreq:2`, and the prior from the other
   prompts of the bank (leave-one-out). Reported: same seed as exact selection over all K, Spearman of proxy vs exact
   s (mean over test prompts), the judge's score of the kept seed, and the cost: M / K exact round trips per prompt,
   plus for the prior its calibration (P_cal x K round trips) amortised over the test prompts.
4. `method=select_fast method.proxy=prior:<file> method.shortlist=5` on the test prompts (config guidance): its kept
   seeds must equal the query's.
5. The noise statistics: Spearman of each seed's mean s (over all prompts) with |eps| and the low-frequency energy,
   and how much seed variance the norm explains (|eps| concentrates: relative std ~ 1/sqrt(2d)).

Knobs and their values: conf/study/seed_share.yaml. Writes results.json and table.md under `out` (after each model).
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from noise_exp.bank.decompose import mean_pairwise_spearman
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes


@dataclass(frozen=True)
class Spec:
    calibration: str  # dataset of the calibration prompts
    test: str  # dataset of the test prompts
    judge: str | None  # evaluator of the test candidates' images
    sizes: tuple[int, int]  # default (calibration, test) prompts
    batch_size: int = 50  # candidates per forward pass


SPECS = {"small_digits": Spec("digits", "digits", "digit_classifier", (5, 5)),
         "small_shapes": Spec("shapes_val", "shapes_bench", "shapes_geneval", (12, 20)),
         "tiny_sdxl": Spec("shapes_val", "shapes_bench", None, (6, 8)),  # random weights: the control
         "small_shapes_l": Spec("shapes_val", "shapes_bench", "shapes_geneval", (8, 10))}
REAL_MODEL = Spec("drawbench", "pickapic", None, (16, 32), batch_size=8)
SHORTLISTS = (1, 2, 3, 5, 10)
E2E_SHORTLIST = 5
NOISE_STATS = ("norm", "lowfreq:2", "lowfreq:4")


@dataclass
class Config:
    """conf/study/seed_share.yaml."""

    out: Path
    models: list[str]  # SPECS' models, or a real model's config (REAL_MODEL's prompt sets)
    seeds: int  # K seeds shared by every prompt
    calibration: Optional[int]  # calibration prompts (null: the model's default)
    test: Optional[int]  # test prompts (null: the model's default)
    shortlists: list[int]  # short-list sizes M
    bootstrap: int  # bootstrap draws of the decomposition
    model_override: list[str]  # model.* overrides for every run, e.g. [model.dtype=float16]
    threads: int


def distinct_prompts(dataset: str, count: int, exclude: Sequence[str] = ()):
    """The first `count` prompts of `dataset` with a text not seen before and not in `exclude`."""
    from noise_exp.config import compose_config
    from noise_exp.runner import build

    seen, kept = set(exclude), []
    for prompt in build(compose_config([f"dataset={dataset}"]).dataset, "dataset").load():
        if prompt.text not in seen and len(kept) < count:
            seen.add(prompt.text)
            kept.append(prompt)
    if len(kept) < count:
        raise NoiseExpError(f"dataset={dataset} has {len(kept)} usable distinct prompts, {count} asked")
    return kept


def write_subset(prompts, path: Path) -> None:
    lines = [json.dumps({"id": p.id, "prompt": p.text, **p.meta}) for p in prompts]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def run_job(model: str, dataset: str, subset: Path, run_dir: Path, args: Config, *overrides: str) -> dict[str, Any]:
    from noise_exp.config import compose_config
    from noise_exp.runner import run_experiment

    cfg = compose_config([f"model={model}", *args.model_override, f"dataset={dataset}", f"dataset.path={subset}",
                          "dataset.id_field=id", "dataset.text_field=prompt", "dataset.offset=0", "dataset.limit=null",
                          "dataset.max_id=null", *overrides])
    return run_experiment(cfg, run_dir)


def select_run(model, spec: Spec, dataset, subset, run_dir, bank, guidance, judge, args) -> None:
    scoring = ["method.score_candidates=true", f"evaluator=[{judge}]"] if judge else []
    run_job(model, dataset, subset, run_dir, args, "method=select", f"method.num_seeds={args.seeds}",
        f"method.batch_size={spec.batch_size}", f"model.guidance_scale={guidance}", f"bank.path={bank}",
        "save_images=[stable]", *scoring)


def kept_seeds(proxy: np.ndarray, exact: np.ndarray, shortlist: int) -> np.ndarray:
    """Per test prompt, the position of the exact argmax among the proxy's best `shortlist` (ties: lower seed)."""
    from noise_exp.methods.select_fast import shortlist_indices

    chosen = []
    for p in range(exact.shape[0]):
        scores = torch.tensor(np.asarray(proxy[p] if proxy.ndim == 2 else proxy, dtype=np.float64))
        checked = shortlist_indices(scores, shortlist, 0)
        chosen.append(checked[int(np.argmax(exact[p, checked]))])
    return np.array(chosen)


def selection_rows(exact: np.ndarray, judge: np.ndarray | None, proxies: dict[str, tuple[np.ndarray, float]],
                   shortlists: Sequence[int]) -> list[dict[str, Any]]:
    """Same seed as exact, Spearman, judge of the kept seed and cost ratio per (proxy, M); `proxies` maps a name to
    (scores [K] or [P, K], one-off cost as a fraction of one prompt's exact selection)."""
    prompts, k = exact.shape
    best = exact.argmax(axis=1)

    def judged(chosen) -> float:
        return float("nan") if judge is None else float(judge[np.arange(prompts), chosen].mean())

    rows = [{"proxy": "exact (select)", "M": k, "same_seed": 1.0, "spearman": 1.0, "judge": judged(best),
             "nfe_ratio": 1.0, "amortised_ratio": 1.0},
            {"proxy": "random seed", "M": 1, "same_seed": 1.0 / k, "spearman": 0.0,
             "judge": float("nan") if judge is None else float(judge.mean()), "nfe_ratio": 0.0,
             "amortised_ratio": 0.0}]
    for name, (scores, one_off) in proxies.items():
        per_prompt = scores if scores.ndim == 2 else np.broadcast_to(scores, exact.shape)
        rho = statistics.fmean(mean_pairwise_spearman(np.stack([per_prompt[p], exact[p]])) for p in range(prompts))
        for m in shortlists:
            chosen = kept_seeds(per_prompt, exact, m)
            rows.append({"proxy": name, "M": m, "same_seed": float((chosen == best).mean()), "spearman": rho,
                         "judge": judged(chosen), "nfe_ratio": m / k, "amortised_ratio": m / k + one_off})
    return rows


def noise_statistics(model, seeds: Sequence[int]) -> dict[str, np.ndarray]:
    from noise_exp.methods.seed_proxies import low_frequency_energy, noise_norm

    noise = model.draw_noise(list(seeds)).float().cpu()
    stats = {"norm": noise_norm(noise).numpy()}
    for factor in (2, 4):
        if noise.shape[-1] % factor == 0 and noise.shape[-2] % factor == 0 and noise.shape[-1] > factor:
            stats[f"lowfreq:{factor}"] = low_frequency_energy(noise, factor).numpy()
    return stats


def norm_facts(seed_means: np.ndarray, norm: np.ndarray, dims: int) -> dict[str, float]:
    """The norm's grip on the seed effect: relative spread of |eps| (measured and 1/sqrt(2d)), Spearman and R^2 of
    the seed means on |eps|, the slopes ds/d|eps| and ds/dr (r = |eps| / sqrt(d)), and the seed std the norm explains.
    |eps| - sqrt(d) has std ~ 1/sqrt(2) at any d, r has std ~ 1/sqrt(2d): which slope stays put across d says whether
    the norm's effect survives at SDXL's d."""
    slope, _ = np.polyfit(norm, seed_means, 1)
    return {"d": dims, "norm_relative_std": float(norm.std() / norm.mean()),
            "theory_relative_std": 1 / math.sqrt(2 * dims), "norm_std": float(norm.std()),
            "spearman_norm": mean_pairwise_spearman(np.stack([norm, seed_means])),
            "r2_norm": float(np.corrcoef(norm, seed_means)[0, 1] ** 2),
            "slope_per_norm": float(slope), "slope_per_relative_norm": float(slope * math.sqrt(dims)),
            "seed_std": float(seed_means.std()), "seed_std_from_norm": float(abs(slope) * norm.std())}


def shared_argmax(values: np.ndarray) -> dict[str, Any]:
    """How many prompts (rows) have the most common argmax seed, and how many distinct argmaxes there are."""
    best = values.argmax(axis=1)
    seeds, counts = np.unique(best, return_counts=True)
    return {"modal_seed": int(seeds[counts.argmax()]), "prompts_with_it": int(counts.max()),
            "distinct": int(len(seeds)), "prompts": int(len(best))}


def table_of(candidates, judge: str | None):
    from noise_exp.bank.seed_table import seed_table

    table = seed_table(candidates)
    scores = None
    if judge:
        column = f"score.{judge}"
        scores = np.stack([p.frame.drop_duplicates("seed").set_index("seed").loc[table.seeds, column].to_numpy(float)
                           for p in candidates.prompts])
    return table, scores


def study_guidance(name: str, spec: Spec, model, guidance: float, config_guidance: float, calibration, test,
                   out: Path, args) -> dict[str, Any]:
    from noise_exp.bank.__main__ import main as bank_main
    from noise_exp.bank.queries import load_candidates
    from noise_exp.bank.seed_table import seed_table

    bank, tag = out / "bank", f"g{guidance:g}"
    judge = spec.judge if guidance == config_guidance else None
    start = time.perf_counter()
    for split, prompts, dataset, scored in (("calibration", calibration, spec.calibration, None),
                                            ("test", test, spec.test, judge)):
        select_run(name, spec, dataset, out / f"{split}.jsonl", out / f"{split}_{tag}", bank, guidance, scored, args)
        print(f"{name} {tag}: {split} candidates ({time.perf_counter() - start:.0f}s)", flush=True)
    cal = load_candidates(out / f"calibration_{tag}")
    test_candidates = load_candidates(out / f"test_{tag}")
    # what computing the candidates cost when they were computed (a rerun reads them from the bank)
    seconds = sum(float((p.frame["seconds"] + p.frame["seconds_scoring"].fillna(0)).sum())
                  for p in (*cal.prompts, *test_candidates.prompts))
    if bank_main(["decompose", str(bank), "--scope", cal.scope.digest, "--out", str(out / f"decompose_{tag}"),
                  "--bootstrap", str(args.bootstrap)]) != 0:
        raise NoiseExpError("decompose failed")
    decomposition = json.loads((out / f"decompose_{tag}" / "decomposition.json").read_text())
    prior_file = out / f"prior_{tag}.json"
    if bank_main(["prior", str(out / f"calibration_{tag}"), "--out", str(prior_file)]) != 0:
        raise NoiseExpError("prior failed")
    prior = json.loads(prior_file.read_text())
    test_table, judged = table_of(test_candidates, judge)
    everything = seed_table(load_candidates(bank, cal.scope.digest))
    if prior["seeds"] != test_table.seeds or everything.seeds != test_table.seeds:
        raise NoiseExpError("calibration and test candidates differ in seeds")
    exact, k = test_table.values, len(test_table.seeds)
    stats = noise_statistics(model, test_table.seeds)
    all_rows = {text: row for text, row in zip(everything.prompts, everything.values)}
    leave_one_out = np.stack([np.mean([row for other, row in all_rows.items() if other != text], axis=0)
                              for text in test_table.prompts])
    calibration_cost = len(prior["prompts"]) / len(test_table.prompts)  # P_cal x K round trips over P_test x K
    proxies = {"prior": (np.array(prior["prior"]), calibration_cost),
               "prior, leave-one-out": (leave_one_out, float("nan")),
               **{stat: (stats[stat], 0.0) for stat in NOISE_STATS if stat in stats}}
    rows = selection_rows(exact, judged, proxies, args.shortlists)
    seed_means = everything.values.mean(axis=0)
    result = {"guidance": guidance, "seconds": round(seconds, 1), "calibration_prompts": len(prior["prompts"]),
              "test_prompts": len(test_table.prompts), "all_prompts": len(everything.prompts), "seeds": k,
              "exact_nfes": float(test_table.nfe / exact.size), "judge": judge, "decomposition": decomposition,
              "selection": rows, "norm": norm_facts(seed_means, stats["norm"], int(model.draw_noise([0])[0].numel())),
              "stat_spearman": {stat: mean_pairwise_spearman(np.stack([values, seed_means]))
                                for stat, values in stats.items()},
              "argmax": shared_argmax(everything.values), "test_argmax": shared_argmax(exact),
              "calibration_size": calibration_size(all_rows, prior["prompts"], exact, test_table.prompts)}
    if guidance == config_guidance:
        result["end_to_end"] = end_to_end(name, spec, out, tag, prior_file, exact, proxies["prior"][0], args)
    return result


def calibration_size(rows: dict[str, np.ndarray], calibration: list[str], exact: np.ndarray,
                     test: list[str]) -> list[dict[str, Any]]:
    """Same seed as exact at M = 1, 2, 5 with a prior from the first n calibration prompts."""
    sizes = sorted({n for n in (1, 2, 4, 8, len(calibration)) if n <= len(calibration)})
    best = exact.argmax(axis=1)
    out = []
    for n in sizes:
        prior = np.mean([rows[text] for text in calibration[:n]], axis=0)
        out.append({"n": n, **{f"M={m}": float((kept_seeds(prior, exact, m) == best).mean()) for m in (1, 2, 5)}})
    return out


def end_to_end(name: str, spec: Spec, out: Path, tag: str, prior_file: Path, exact: np.ndarray, prior: np.ndarray,
               args) -> dict[str, Any]:
    """`method=select_fast method.proxy=prior:<file>` on the test prompts: its kept seeds against the query's."""
    from noise_exp.rundir.results import read_results

    run_dir = out / f"select_fast_prior_{tag}"
    start = time.perf_counter()
    run_job(name, spec.test, out / "test.jsonl", run_dir, args, "method=select_fast", f"method.num_seeds={args.seeds}",
        f"method.batch_size={spec.batch_size}", f"method.proxy=prior:{prior_file}", f"method.shortlist={E2E_SHORTLIST}", "method.unstable_shortlist=1",
        "save_images=[stable]")
    rows = read_results(run_dir)
    stable = rows[rows["variant"] == "stable"].sort_values("prompt_id")
    seeds = [int(s) for s in stable["seed"]]
    expected = kept_seeds(prior, exact, E2E_SHORTLIST).tolist()
    return {"kept": seeds, "expected": expected, "equal": seeds == expected,
            "seconds": round(time.perf_counter() - start, 1), "unet_calls": float(stable["unet_calls"].mean())}


def study_model(name: str, args) -> dict[str, Any]:
    from noise_exp.config import compose_config
    from noise_exp.runner import build

    spec = SPECS.get(name, REAL_MODEL)
    n_cal, n_test = args.calibration or spec.sizes[0], args.test or spec.sizes[1]
    out = args.out / name
    test = distinct_prompts(spec.test, n_test)
    calibration = distinct_prompts(spec.calibration, n_cal, exclude=[p.text for p in test])
    write_subset(test, out / "test.jsonl")
    write_subset(calibration, out / "calibration.jsonl")
    cfg = compose_config([f"model={name}", *args.model_override])
    model = build(cfg.model, "model")
    config_guidance = float(cfg.model.guidance_scale)
    guidances = [config_guidance] + ([1.0] if config_guidance > 1 else [])
    result = {"model": name, "guidance": {}}
    for guidance in guidances:
        result["guidance"][f"{guidance:g}"] = study_guidance(name, spec, model, guidance, config_guidance,
                                                             calibration, test, out, args)
    return result


def _f(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_tables(results: list[dict[str, Any]]) -> str:
    lines = ["| model | guidance | prompts x seeds | share of var(s): seed | prompt | interaction / rest | "
             "mean Spearman of two prompts' seed rankings | prompts whose argmax is the most common one |",
             "|---|---:|---|---|---|---|---|---|"]
    for result in results:
        for g, part in result["guidance"].items():
            d, best = part["decomposition"], part["argmax"]

            def cell(key: str) -> str:
                return f"{d[key]['estimate']:.2f} [{d[key]['low']:.2f}, {d[key]['high']:.2f}]"

            lines.append(f"| {result['model']} | {g} | {d['prompts']} x {d['seeds']} | {cell('seed')} | "
                         f"{cell('prompt')} | {cell('rest')} | {cell('spearman')} | {best['prompts_with_it']} of "
                         f"{best['prompts']} (seed {best['modal_seed']}; {best['distinct']} distinct) |")
    lines += ["", "| model | guidance | d | rel. std of \\|eps\\| (1/sqrt(2d)) | Spearman of seed mean s with "
              "\\|eps\\| / lowfreq:2 / lowfreq:4 | R^2 on \\|eps\\| | ds/d\\|eps\\| | ds/dr, r = \\|eps\\|/sqrt(d) | "
              "std of seed mean s (from the norm) |", "|---|---:|---:|---|---|---:|---:|---:|---|"]
    for result in results:
        for g, part in result["guidance"].items():
            n, rho = part["norm"], part["stat_spearman"]
            stats = " / ".join(f"{rho[k]:+.2f}" if k in rho else "-" for k in NOISE_STATS)
            lines.append(f"| {result['model']} | {g} | {n['d']} | {n['norm_relative_std']:.4f} "
                         f"({n['theory_relative_std']:.4f}) | {stats} | {n['r2_norm']:.2f} | "
                         f"{n['slope_per_norm']:.4f} | {n['slope_per_relative_norm']:.3f} | {n['seed_std']:.4f} "
                         f"({n['seed_std_from_norm']:.4f}) |")
    lines.append("")
    for result in results:
        for g, part in result["guidance"].items():
            shortlists = sorted({row["M"] for row in part["selection"] if row["proxy"] not in ("exact (select)",
                                                                                                "random seed")})
            judged = part["judge"] is not None
            lines += [f"#### {result['model']}, guidance {g}: {part['test_prompts']} test prompts x K = "
                      f"{part['seeds']}, prior from {part['calibration_prompts']} other prompts (test argmax: the "
                      f"same seed for {part['test_argmax']['prompts_with_it']} of {part['test_prompts']}); "
                      f"candidates {part['seconds']:.0f} s; judge: {part['judge'] or 'none'}", "",
                      f"| proxy | Spearman rho with exact s | same seed as exact, M = {' / '.join(map(str, shortlists))} "
                      f"| judge of kept, M = {' / '.join(map(str, shortlists))} | NFE ratio per prompt | one-off "
                      f"cost amortised over the test prompts |", "|---|---:|---|---|---|---:|"]
            rows = part["selection"]
            for special in rows[:2]:
                lines.append(f"| {special['proxy']} | {special['spearman']:.2f} | {special['same_seed']:.2f} | "
                             f"{_f(special['judge'], 3)} | {special['nfe_ratio']:.2f} | - |")
            for proxy in dict.fromkeys(row["proxy"] for row in rows[2:]):
                mine = [row for row in rows if row["proxy"] == proxy]
                one_off = mine[0]["amortised_ratio"] - mine[0]["nfe_ratio"]
                same = " / ".join(f"{row['same_seed']:.2f}" for row in mine)
                judge = " / ".join(_f(row["judge"], 3) for row in mine) if judged else "-"
                ratios = " / ".join(f"{row['nfe_ratio']:.2f}" for row in mine)
                lines.append(f"| {proxy} | {mine[0]['spearman']:.2f} | {same} | {judge} | {ratios} | {_f(one_off)} |")
            sizes = part["calibration_size"]
            lines += ["", "Prior from the first n calibration prompts, same seed as exact at M = 1 / 2 / 5: " + "; ".join(
                f"n = {s['n']}: {s['M=1']:.2f} / {s['M=2']:.2f} / {s['M=5']:.2f}" for s in sizes) + "."]
            if "end_to_end" in part:
                e2e = part["end_to_end"]
                lines.append(f"`method=select_fast method.proxy=prior:<file> method.shortlist={E2E_SHORTLIST}` "
                             f"(+ 1 unstable): kept seeds {'equal' if e2e['equal'] else 'DIFFER from'} the query's on "
                             f"the {len(e2e['kept'])} test prompts; {e2e['unet_calls']:.0f} NFEs per prompt "
                             f"(exact selection: {part['seeds'] * part['exact_nfes']:.0f}); {e2e['seconds']:.0f} s.")
            lines.append("")
    return "\n".join(lines)


def run(config: Config, command: str) -> int:
    """Each model's decomposition, prior and proxies; results.json and table.md rewritten after each model."""
    from noise_exp.config import CONF_DIR
    from noise_exp.files import writable_folder
    from noise_exp.params import integer_param

    if config.seeds < 2 or min(config.shortlists, default=0) < 1 or (config.calibration or 1) < 1 or (config.test or 1) < 1:
        raise NoiseExpError("seeds must be >= 2, shortlists (at least one), calibration and test >= 1")
    integer_param("bootstrap", config.bootstrap, 1)
    integer_param("threads", config.threads, 1)
    known = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))
    unknown = [name for name in config.models if name not in known]
    if unknown or not config.models:
        raise NoiseExpError(f"models: {', '.join(unknown) + ' is not a model config' if unknown else 'none'}; "
                            f"choose among {', '.join(known)}")
    writable_folder(config.out, "out")
    torch.set_num_threads(config.threads)
    config.out = config.out.resolve()  # the prior's path is part of the select_fast run's settings: one spelling
    start = time.perf_counter()
    results = []
    for name in config.models:  # written after each model, so a long study keeps what it finished
        results.append(study_model(name, config))
        table = format_tables(results)
        atomic_write_bytes(config.out / "results.json", (json.dumps({"results": results, "seconds": round(
            time.perf_counter() - start, 1)}, indent=1, default=str) + "\n").encode())
        atomic_write_bytes(config.out / "table.md", table.encode())
        print(f"{name}: done ({time.perf_counter() - start:.0f}s)", flush=True)
    print(table)
    print(f"seed share study: {time.perf_counter() - start:.0f}s; {config.out / 'table.md'}")
    return 0

