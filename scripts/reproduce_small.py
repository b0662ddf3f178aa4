"""The paper's Tables 1 and 2 for the small digits model, end to end on CPU (`make reproduce-small`).

    python scripts/reproduce_small.py [--out outputs/reproduce_small] [--blocks 10] [--num-seeds 100]
                                      [--optimize-prompts 100] [--steps 50] [--lr 0.2] [--threads 1]

- Table 1 analogue (noise selection, Algorithm 1), without guidance like the paper's SDXL-turbo setting:
  each of the 10 digit prompts selects the most and the least stable of K seeds; `--blocks` disjoint seed
  blocks (seeds b*K .. b*K+K-1, one run folder each) give 10 x blocks independent stable/unstable pairs.
- Table 2 analogue (noise optimization, Algorithm 2), with guidance like the paper's SDXL setting: prompts
  0..N-1 of dataset=digits ("a handwritten digit <id mod 10>", seed = id), original vs optimized noise.
  The default lr keeps the paper's step relative to the noise: the gradient of 1 - cos(eps, eps') has norm
  sin(angle)/|eps| and |eps| ~ sqrt(d), so a step moves eps by lr*sin/d of its norm; the paper's lr 100 at
  d = 4x128x128 is lr 0.1 at d = 4x4x4, and 0.2 over 50 steps keeps the paper's sum of cosine-annealed lrs
  over 100 steps.

Every run goes through the runner exactly as `python run.py model=small_digits dataset=digits method=...
evaluator=[digit_classifier,digit_realism]` would (same configs, same run folders, same scoring and report);
the script only composes the overrides, merges the folders with `noise_exp.report.write_report` and adds an
exact two-sided sign test per comparison. The model is trained first if its folder is missing. Finished
prompts are skipped when the script is re-run with the same --out (the runner's resume).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.config import compose_config  # noqa: E402
from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import exit_on_user_error  # noqa: E402

EVALUATORS = "evaluator=[digit_classifier,digit_realism]"
METRICS = ("digit_classifier", "digit_realism", "stability")


def run(overrides: list[str], run_dir: Path) -> float:
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


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "reproduce_small")
    parser.add_argument("--blocks", type=int, default=10, help="seed blocks for selection (10 prompts each; 0 skips)")
    parser.add_argument("--num-seeds", type=int, default=100, help="K, candidate seeds per selection")
    parser.add_argument("--optimize-prompts", type=int, default=50, help="prompts for optimization (<= 100; 0 skips)")
    parser.add_argument("--steps", type=int, default=50, help="optimization steps n")
    parser.add_argument("--lr", type=float, default=0.2, help="optimization lr (see the docstring)")
    parser.add_argument("--select-guidance", type=float, default=1.0, help="CFG scale for selection (paper: 0)")
    parser.add_argument("--optimize-guidance", type=float, default=3.0, help="CFG scale for optimization")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest for this model on a shared 2-core machine")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    select_dirs = []
    for block in range(args.blocks):
        run_dir = out / "select" / f"seeds_{block * args.num_seeds}-{(block + 1) * args.num_seeds - 1}"
        run([f"model.guidance_scale={args.select_guidance}", "method=select", "dataset.limit=10",
             f"method.num_seeds={args.num_seeds}", f"method.seed_start={block * args.num_seeds}",
             "method.batch_size=25"], run_dir)
        select_dirs.append(run_dir)
    timings["selection_s"] = time.perf_counter() - start

    start = time.perf_counter()
    optimize_dir = out / "optimize"
    if args.optimize_prompts:
        run([f"model.guidance_scale={args.optimize_guidance}", "method=optimize",
             f"dataset.limit={args.optimize_prompts}", f"method.steps={args.steps}", f"method.lr={args.lr}"],
            optimize_dir)
    timings["optimization_s"] = time.perf_counter() - start

    from noise_exp.report.sweep import tie_tolerances
    from noise_exp.report.tables import ties_rule

    table1 = report(select_dirs, out / "report_select", [("stable", "unstable")]) if select_dirs else []
    table2 = (report([optimize_dir], out / "report_optimize", [("optimized", "original")])
              if args.optimize_prompts else [])
    summary = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "timings_s": {k: round(v, 1) for k, v in timings.items()}, "selection": table1, "optimization": table2}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = (f"# Small digits model: Tables 1 and 2 analogues\n\n"
            f"Selection: {args.blocks} seed blocks x 10 digits, K={args.num_seeds}, guidance "
            f"{args.select_guidance} ({timings['selection_s']:.0f}s). Optimization: {args.optimize_prompts} prompts, "
            f"n={args.steps}, lr={args.lr}, guidance {args.optimize_guidance} ({timings['optimization_s']:.0f}s). "
            f"Means, tables and image grids: report_select/report.md, report_optimize/report.md.\n\n"
            f"{ties_rule(tie_tolerances(select_dirs + [optimize_dir]), METRICS)}\n\n"
            f"## Table 1 analogue: stable vs unstable noise (selection)\n\n{markdown(table1)}\n"
            f"## Table 2 analogue: optimized vs original noise (optimization)\n\n{markdown(table2)}")
    (out / "summary.md").write_text(text)
    print(text)
    print(f"written: {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
