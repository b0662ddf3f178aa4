"""The paper's Tables 1 and 2 for the small digits model, end to end on CPU (`make reproduce-small`).

    python -m noise_exp.studies reproduce_small [out=outputs/reproduce_small] [blocks=10] [num_seeds=100]
        [optimize_prompts=50] [steps=50] [lr=0.2] [select_guidance=1] [optimize_guidance=3] [threads=1]

Knobs and their values: conf/study/reproduce_small.yaml.

- Table 1 analogue (noise selection, Algorithm 1), without guidance like the paper's SDXL-turbo setting:
  each of the 10 digit prompts selects the most and the least stable of K seeds; `blocks` disjoint seed
  blocks (seeds b*K .. b*K+K-1, one run folder each) give 10 x blocks independent stable/unstable pairs.
- Table 2 analogue (noise optimization, Algorithm 2), with guidance like the paper's SDXL setting: prompts
  0..N-1 of dataset=digits ("a handwritten digit <id mod 10>", seed = id), original vs optimized noise.
  The default lr keeps the paper's step relative to the noise: the gradient of 1 - cos(eps, eps') has norm
  sin(angle)/|eps| and |eps| ~ sqrt(d), so a step moves eps by lr*sin/d of its norm; the paper's lr 100 at
  d = 4x128x128 is lr 0.1 at d = 4x4x4, and 0.2 over 50 steps keeps the paper's sum of cosine-annealed lrs
  over 100 steps.

Every run goes through the runner exactly as `python run.py model=small_digits dataset=digits method=...
evaluator=[digit_classifier,digit_realism]` would (same configs, same run folders, same scoring and report);
the study only composes the overrides, merges the folders with `noise_exp.report.write_report` and adds an
exact two-sided sign test per comparison. The model is trained first if its folder is missing. Finished
prompts are skipped when the study is re-run with the same `out` (the runner's resume). Writes summary.md,
summary.json and summary.csv, the machine-readable rows in the format of the committed
results/reference/reproduce_small.csv that the reproduce_shapes study reads.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from noise_exp.config import compose_config
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes

EVALUATORS = "evaluator=[digit_classifier,digit_realism]"
METRICS = ("digit_classifier", "digit_realism", "stability")
# summary.csv's columns: also its committed copy's, results/reference/reproduce_small.csv (reproduce_shapes reads it)
SUMMARY_COLUMNS = ("table", "guidance", "metric", "n", "wins", "ties", "losses", "mean_a", "mean_b")


@dataclass
class Config:
    """conf/study/reproduce_small.yaml."""

    out: Path
    blocks: int  # seed blocks for selection (10 prompts each; 0 skips)
    num_seeds: int  # K, candidate seeds per selection
    optimize_prompts: int  # prompts for optimization (<= 100; 0 skips)
    steps: int  # optimization steps n
    lr: float  # optimization lr (see the docstring)
    select_guidance: float  # CFG scale for selection (paper: 0)
    optimize_guidance: float  # CFG scale for optimization
    threads: int  # torch threads; 1 is fastest for this model on a shared 2-core machine


def run_job(overrides: list[str], run_dir: Path) -> float:
    """One `run.py` job in this process (the model is reloaded per job; it is small)."""
    from noise_exp.runner import run_experiment

    start = time.perf_counter()
    cfg = compose_config(["model=small_digits", "dataset=digits", EVALUATORS, *overrides])
    print(f"== {' '.join(overrides)} -> {run_dir}", flush=True)
    run_experiment(cfg, run_dir)
    return time.perf_counter() - start


def sign_tests(frame, comparisons, tolerances) -> list[dict]:
    """Per comparison and metric: the report's win counts (`winning_rates`: ties within the metric's
    `report.tie_tolerance`, half a win) with their Wilson interval, the means, and the exact two-sided sign test
    (ties dropped)."""
    from noise_exp.report.tables import paired_scores, sign_test_p, winning_rates

    rates = winning_rates(frame, comparisons, tie_tolerance=tolerances)
    rows = []
    for rate in rates[rates["metric"].isin(METRICS)].itertuples(index=False):
        pairs = paired_scores(frame, rate.a, rate.b, rate.metric)
        p_value = sign_test_p(rate.wins, rate.losses) if rate.wins + rate.losses else float("nan")
        rows.append({"comparison": f"{rate.a} vs {rate.b}", "metric": rate.metric, "n": int(rate.n),
                     "wins": int(rate.wins), "losses": int(rate.losses), "ties": int(rate.ties),
                     "mean_a": float(pairs["a"].mean()), "mean_b": float(pairs["b"].mean()),
                     "mean_difference": float((pairs["a"] - pairs["b"]).mean()), "sign_test_p": float(p_value),
                     "win_rate": float(rate.win_rate), "ci_low": float(rate.ci_low), "ci_high": float(rate.ci_high),
                     "tie_tolerance": float(rate.tie_tolerance)})
    return rows


def report(run_dirs: list[Path], out_dir: Path, comparisons) -> list[dict]:
    from noise_exp.report import write_report
    from noise_exp.report.sweep import tie_tolerances
    from noise_exp.report.tables import load_runs

    write_report(run_dirs, out_dir, pool=True)  # seed blocks share prompt ids and have no .hydra/: one setting
    return sign_tests(load_runs(run_dirs), comparisons, tie_tolerances(run_dirs))


def markdown(rows: list[dict]) -> str:
    header = ("| comparison | metric | n | A wins | B wins | ties | mean A | mean B | win rate A [95% CI] | "
              "sign test p |\n|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n")
    lines = [f"| {r['comparison']} | {r['metric']} | {r['n']} | {r['wins']} | {r['losses']} | {r['ties']} | "
             f"{r['mean_a']:.4f} | {r['mean_b']:.4f} | {r['win_rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | "
             f"{r['sign_test_p']:.3g} |" for r in rows]
    return header + "\n".join(lines) + "\n"


def summary_csv(table1: list[dict], table2: list[dict], config: Config) -> str:
    """The rows as results/reference/reproduce_small.csv holds them: table, guidance, metric, counts, means."""
    import pandas as pd

    rows = [{"table": table, "guidance": float(guidance), **{k: row[k] for k in SUMMARY_COLUMNS[2:]}}
            for table, guidance, rows_ in (("selection", config.select_guidance, table1),
                                           ("optimization", config.optimize_guidance, table2)) for row in rows_]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).to_csv(index=False)


def run(config: Config, command: str) -> int:
    """Selection over the seed blocks, optimization, then the two tables with their sign tests."""
    from noise_exp.files import writable_folder
    from noise_exp.params import integer_param, real_param

    for key in ("blocks", "optimize_prompts"):
        integer_param(key, getattr(config, key), 0)
    for key in ("num_seeds", "steps", "threads"):
        integer_param(key, getattr(config, key), 1)
    if config.optimize_prompts > 100:  # conf/dataset/digits.yaml: ids 0..99
        raise NoiseExpError(f"optimize_prompts must be <= 100 (the digits prompts), got {config.optimize_prompts}")
    real_param("lr", config.lr, 0.0)
    writable_folder(config.out, "out")
    torch.set_num_threads(config.threads)
    out = config.out.resolve()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    select_dirs = []
    for block in range(config.blocks):
        run_dir = out / "select" / f"seeds_{block * config.num_seeds}-{(block + 1) * config.num_seeds - 1}"
        run_job([f"model.guidance_scale={config.select_guidance}", "method=select", "dataset.limit=10",
             f"method.num_seeds={config.num_seeds}", f"method.seed_start={block * config.num_seeds}",
             "method.batch_size=25"], run_dir)
        select_dirs.append(run_dir)
    timings["selection_s"] = time.perf_counter() - start

    start = time.perf_counter()
    optimize_dir = out / "optimize"
    if config.optimize_prompts:
        run_job([f"model.guidance_scale={config.optimize_guidance}", "method=optimize",
             f"dataset.limit={config.optimize_prompts}", f"method.steps={config.steps}", f"method.lr={config.lr}"],
            optimize_dir)
    timings["optimization_s"] = time.perf_counter() - start

    from noise_exp.report.sweep import tie_tolerances
    from noise_exp.report.tables import ties_rule

    table1 = report(select_dirs, out / "report_select", [("stable", "unstable")]) if select_dirs else []
    table2 = (report([optimize_dir], out / "report_optimize", [("optimized", "original")])
              if config.optimize_prompts else [])
    summary = {"command": command, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
               "timings_s": {k: round(v, 1) for k, v in timings.items()}, "selection": table1, "optimization": table2}
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    atomic_write_bytes(out / "summary.csv", summary_csv(table1, table2, config).encode("utf-8"))
    text = (f"# Small digits model: Tables 1 and 2 analogues\n\n"
            f"Selection: {config.blocks} seed blocks x 10 digits, K={config.num_seeds}, guidance "
            f"{config.select_guidance} ({timings['selection_s']:.0f}s). Optimization: {config.optimize_prompts} prompts, "
            f"n={config.steps}, lr={config.lr}, guidance {config.optimize_guidance} ({timings['optimization_s']:.0f}s). "
            f"Means, tables and image grids: report_select/report.md, report_optimize/report.md.\n\n"
            f"{ties_rule(tie_tolerances(select_dirs + [optimize_dir]), METRICS)}\n\n"
            f"## Table 1 analogue: stable vs unstable noise (selection)\n\n{markdown(table1)}\n"
            f"## Table 2 analogue: optimized vs original noise (optimization)\n\n{markdown(table2)}")
    atomic_write_bytes(out / "summary.md", text.encode("utf-8"))
    print(text)
    print(f"written: {out / 'summary.md'}")
    return 0

