"""The paper's Tables 1 and 2 on the shapes world's two models, next to the digits result (`make reproduce-shapes`).

    python scripts/reproduce_shapes.py [--prompts 36 [N_L]] [--seeds 100] [--optimize-prompts 24 [N_L]] [--steps 20]
                                       [--lr RULE] [--models small_shapes small_shapes_l] [--jobs 1] [--out DIR]
                                       [--quick]

Prompt counts take one value, or one per model. `--jobs 2` runs the models in two processes at once (one core each;
`make reproduce-shapes` does), so the wall time is the slower model's: with the defaults (36 and 24 prompts per
model) 20.7 min on an idle 2-core machine (small_shapes 13 min, small_shapes_l 20.3 min; docs/shapes_reproduction.md).

- Table 1 analogue (selection, Algorithm 1): the first --prompts prompts of dataset=shapes_bench (the tags come
  in turn, so a multiple of 6 is balanced), each keeping the most and the least stable of K seeds of its own
  (method.seeds_per_prompt=true: prompt i tries seeds i*K .. i*K+K-1, so repeated captions get fresh noise).
- Table 2 analogue (optimization, Algorithm 2): the first --optimize-prompts prompts, prompt i from seed i,
  n = --steps steps, momentum 0.5, cosine schedule, at the lr of `paper_equivalent_lr` (the project's
  lr-scaling rule, the one scripts/reproduce_small.py uses: lr 0.2 at d = 64 over 50 steps).
- Both at the models' configured T = 10 and guidance (2 for small_shapes, 3 for small_shapes_l), judged by the
  exact judge (shapes_geneval, per tag) and the learned reward (shapes_reward).
- The digits model (d = 64) is not rerun: its rows are the figures measured by `make reproduce-small`
  (docs/small_model.md), their p-values and intervals recomputed from the documented counts.

Every job goes through the runner as `python run.py model=<m> dataset=shapes_bench method=...
"evaluator=[shapes_geneval,shapes_reward]"` would. Each model's weights folder is first copied into
<out>/weights/, so weights replaced while the script runs cannot mix into its results; the summary names them by
the first 12 hex digits of the sha256 of their training.json. Rerunning with the same --out resumes finished
prompts on the same snapshot (use a new --out for new weights). Writes <out>/summary.md and summary.json.
`--from-runs` samples nothing: it re-counts the comparisons of the run folders an earlier run left in --out (after
a change of the counting rule, e.g. `report.tie_tolerance`) and rewrites its summary, keeping what ran and its times.

A pair is a tie when its scores differ by at most the metric's `report.tie_tolerance` (1e-3 for shapes_reward, 1e-6
float noise for the judge's 0/1 and stability; `noise_exp.report.tables.tie_tolerance_of`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import NoiseExpError, exit_on_user_error  # noqa: E402
from noise_exp.files import atomic_write_bytes  # noqa: E402
from noise_exp.methods.optimization import paper_equivalent_lr  # noqa: E402
from noise_exp.training.common import training_id  # noqa: E402
from noise_exp.report.tables import sign_test_p  # noqa: E402

if TYPE_CHECKING:
    from omegaconf import DictConfig

JUDGE, REWARD, STABILITY = "shapes_geneval", "shapes_reward", "stability"
EVALUATORS = f"evaluator=[{JUDGE},{REWARD}]"
SHAPES_MODELS = ("small_shapes", "small_shapes_l")
TAG_COUNT = 6  # shapes_bench cycles through its six tags
QUICK = {"prompts": [6], "seeds": 4, "optimize_prompts": [6], "steps": 1, "models": ["small_shapes"]}


@dataclass(frozen=True)
class Weights:
    """The weights a model's rows come from: the folder used and sha256(training.json)[:12]."""

    model: str
    folder: str
    training_sha: str
    snapshot: str = ""  # the copy the runs loaded


@dataclass(frozen=True)
class Comparison:
    """A vs B on one metric (and tag) over paired prompts: counts, means, win rate with its Wilson 95% interval,
    and the exact sign test."""

    model: str
    dim: int
    guidance: float
    table: str  # "selection" or "optimization"
    a: str
    b: str
    metric: str
    tag: str  # a shapes tag, or "all"
    n: int
    wins: int
    ties: int
    losses: int
    mean_a: float
    mean_b: float
    win_rate: float
    ci_low: float
    ci_high: float
    sign_p: float


def model_config(model: str, overrides: Sequence[str] = ()) -> DictConfig:
    from noise_exp.config import compose_config

    return compose_config([f"model={model}", "dataset=shapes_bench", EVALUATORS, *overrides])


def latent_dim(weights_dir: Path, height: int, width: int) -> int:
    """d = C · (H / f) · (W / f), f = 2^(VAE levels - 1) (diffusers' vae_scale_factor), from the VAE's config."""
    vae = json.loads((Path(weights_dir) / "vae" / "config.json").read_text())
    factor = 2 ** (len(vae["block_out_channels"]) - 1)
    return vae["latent_channels"] * (height // factor) * (width // factor)


def snapshot_weights(model: str, out: Path) -> Weights:
    """Copy the model's weights folder into <out>/weights/ (same folder name, so the runs' fingerprint is the
    committed folder's). A snapshot already there is kept, so that a resumed run finishes on the weights it began
    with; a line says so when the committed folder has changed since."""
    source = Path(str(model_config(model).model.pretrained))
    if not (source / "training.json").is_file():
        raise NoiseExpError(f"{source} has no training.json: not a trained {model} folder (make train-shapes)")
    target = out / "weights" / source.name
    if not (target / "training.json").is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    elif training_id(target) != training_id(source):
        print(f"note: {model} resumes on its snapshot {_shown(target)} (training.json {training_id(target)}); "
              f"{_shown(source)} is now {training_id(source)}: use a new --out for it", flush=True)
    return Weights(model, _shown(source), training_id(target), _shown(target))


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_job(model: str, overrides: list[str], run_dir: Path) -> float:
    """One `run.py` job in this process; returns its seconds."""
    from noise_exp.runner import run_experiment

    start = time.perf_counter()
    print(f"== {model} {' '.join(overrides)} -> {run_dir}", flush=True)
    run_experiment(model_config(model, overrides), run_dir)
    return time.perf_counter() - start


def run_comparisons(run_dir: Path, count: int, model: str, dim: int, guidance: float, table: str, a: str, b: str
                    ) -> list[Comparison]:
    """A vs B over the first `count` prompts of a scored run folder (it may hold more, from an earlier run): on
    every metric over all of them, and on the judge per tag."""
    from noise_exp.data.shapes import TAGS, parse_caption
    from noise_exp.report.sweep import tie_tolerances
    from noise_exp.report.tables import load_runs, paired_scores, winning_rates

    tolerances = tie_tolerances([run_dir])
    frame = load_runs([run_dir])
    frame = frame[frame["prompt_id"] < count].copy()  # shapes_bench's ids are its row numbers
    frame["tag"] = [parse_caption(str(prompt)).tag for prompt in frame["prompt"]]
    parts = [("all", frame)] + [(tag, frame[frame["tag"] == tag]) for tag in TAGS if (frame["tag"] == tag).any()]
    rows = []
    for tag, part in parts:
        for rate in winning_rates(part, [(a, b)], tie_tolerance=tolerances).itertuples(index=False):
            if tag != "all" and rate.metric != JUDGE:
                continue
            pairs = paired_scores(part, a, b, rate.metric)
            rows.append(Comparison(model, dim, guidance, table, a, b, rate.metric, tag, rate.n, rate.wins, rate.ties,
                                   rate.losses, float(pairs["a"].mean()), float(pairs["b"].mean()), rate.win_rate,
                                   rate.ci_low, rate.ci_high, sign_test_p(rate.wins, rate.losses)))
    return rows


DIGITS_DOC = "docs/small_model.md"
DIGITS_DIM = 4 * 4 * 4
# The digits model's measured pairs (make reproduce-small, docs/small_model.md; counted with exact ties, none):
# (table, guidance, metric, n, A wins, mean A, mean B); A is stable (selection) or optimized (optimization).
DIGITS_FIGURES = (
    ("selection", 1.0, "digit_classifier", 100, 13, 0.535, 0.951),
    ("selection", 1.0, "digit_realism", 100, 2, -23.77, -12.65),
    ("selection", 1.0, STABILITY, 100, 100, 0.982, 0.324),
    ("selection", 3.0, "digit_classifier", 50, 16, 0.968, 0.999),
    ("selection", 3.0, "digit_realism", 50, 0, -19.15, -11.80),
    ("optimization", 3.0, "digit_classifier", 50, 22, 0.9976, 0.9983),
    ("optimization", 3.0, "digit_realism", 50, 5, -13.54, -13.31),
    ("optimization", 3.0, STABILITY, 50, 50, 0.612, 0.531),
)
PAIRS = {"selection": ("stable", "unstable"), "optimization": ("optimized", "original")}


def digits_comparisons() -> list[Comparison]:
    """The documented digits figures as rows, with the win rate, Wilson interval and sign test recomputed."""
    from noise_exp.report.tables import wilson_interval

    rows = []
    for table, guidance, metric, n, wins, mean_a, mean_b in DIGITS_FIGURES:
        low, high = wilson_interval(wins, n)
        rows.append(Comparison("small_digits", DIGITS_DIM, guidance, table, *PAIRS[table], metric, "all", n, wins, 0,
                               n - wins, mean_a, mean_b, wins / n, low, high, sign_test_p(wins, n - wins)))
    return rows


def _row(r: Comparison, per_tag: bool) -> str:
    first = (f"| {r.model} | {r.a} vs {r.b} | {r.tag} " if per_tag else
             f"| {r.dim} | {r.model} (g {r.guidance:g}) | {r.a} vs {r.b} | {r.metric} ")
    return (f"{first}| {r.n} | {r.mean_a:.3f} | {r.mean_b:.3f} | {r.wins} / {r.ties} / {r.losses} | "
            f"{r.win_rate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | {r.sign_p:.2g} |")


def markdown(rows: list[Comparison], per_tag: bool = False) -> str:
    """The comparisons as a Markdown table: per metric over all prompts, or (per_tag) the judge per tag."""
    head = "| model | comparison | tag " if per_tag else "| d | model (guidance) | comparison | metric "
    align = "|---|---|---" if per_tag else "|---:|---|---|---"
    lines = [f"{head}| n | mean A | mean B | A wins / ties / B wins | win rate A [95% CI] | sign test p |",
             f"{align}|---:|---:|---:|---|---|---:|"]
    chosen = [r for r in rows if (r.tag != "all" or r.metric == JUDGE) if per_tag] or [r for r in rows if r.tag == "all"]
    return "\n".join(lines + [_row(r, per_tag) for r in chosen]) + "\n"


def _balanced(value: str) -> int:
    count = int(value)
    if count < 0 or count % TAG_COUNT:
        raise NoiseExpError(f"prompt counts must be multiples of {TAG_COUNT} (shapes_bench cycles through its "
                            f"{TAG_COUNT} tags), got {count}")
    return count


def _per_model(flag: str, counts: list[int], models: list[str]) -> list[int]:
    if len(counts) not in (1, len(models)):
        raise NoiseExpError(f"{flag} takes one count or one per model ({len(models)}), got {len(counts)}")
    return counts * len(models) if len(counts) == 1 else counts


def _parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=_balanced, nargs="+", default=[36],
                        help="selection prompts, one count or one per model (multiples of 6; 0 skips)")
    parser.add_argument("--seeds", type=int, default=100, help="K, candidate seeds per selection")
    parser.add_argument("--optimize-prompts", type=_balanced, nargs="+", default=[24],
                        help="optimization prompts, one count or one per model (multiples of 6; 0 skips)")
    parser.add_argument("--steps", type=int, default=20, help="optimization steps n")
    parser.add_argument("--lr", type=float, default=None, help="optimization lr (default: paper_equivalent_lr)")
    parser.add_argument("--models", nargs="+", choices=SHAPES_MODELS, default=list(SHAPES_MODELS))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "reproduce_shapes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--jobs", type=int, default=1, help="models run at once, each in its own process")
    parser.add_argument("--from-runs", action="store_true",
                        help="sample nothing: re-count the comparisons of the runs in --out and rewrite its summary")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny slice for tests: 6 prompts, K=4, 1 step, small_shapes only")
    return parser


@dataclass
class ModelRun:
    """What ran on one model: its latent size, guidance, prompt counts, lr and the seconds of each job."""

    model: str
    dim: int
    guidance: float
    select_prompts: int
    optimize_prompts: int
    lr: float
    seconds: dict[str, float]


def run_model(model: str, select_prompts: int, optimize_prompts: int, args: argparse.Namespace, out: Path
              ) -> tuple[ModelRun, Weights, list[Comparison]]:
    """Both analogues on one model, from a snapshot of its weights; the comparisons cover the first N prompts."""
    weights = snapshot_weights(model, out)
    cfg = model_config(model).model
    dim = latent_dim(ROOT / weights.snapshot, cfg.height, cfg.width)
    lr = paper_equivalent_lr(dim, args.steps) if args.lr is None else args.lr
    done = ModelRun(model, dim, cfg.guidance_scale, select_prompts, optimize_prompts, lr, {})
    pin = f"model.pretrained={ROOT / weights.snapshot}"
    jobs = (("selection", "select", select_prompts,
             [f"method.num_seeds={args.seeds}", "method.seeds_per_prompt=true", f"method.batch_size={min(args.seeds, 25)}"]),
            ("optimization", "optimize", optimize_prompts, [f"method.steps={args.steps}", f"method.lr={lr}"]))
    rows = []
    for table, method, count, overrides in jobs:
        if count:
            run_dir = out / f"{method}_{model}"
            done.seconds[table] = round(run_job(model, [pin, f"method={method}", f"dataset.limit={count}", *overrides],
                                                      run_dir), 1)
            rows += run_comparisons(run_dir, count, model, dim, cfg.guidance_scale, table, *PAIRS[table])
    return done, weights, rows


def _run_model_in_process(model: str, select_prompts: int, optimize_prompts: int, args: argparse.Namespace,
                          out: Path) -> tuple[ModelRun, Weights, list[Comparison]]:
    """run_model in a worker process of --jobs, with the parent's torch thread count."""
    torch.set_num_threads(args.threads)
    return run_model(model, select_prompts, optimize_prompts, args, out)


def run_models(work: list[tuple[str, int, int]], args: argparse.Namespace, out: Path
               ) -> list[tuple[ModelRun, Weights, list[Comparison]]]:
    """run_model for every (model, selection prompts, optimization prompts), in --jobs processes at once (spawned:
    a forked torch can deadlock), results in the order given."""
    if args.jobs <= 1 or len(work) <= 1:
        return [run_model(*job, args, out) for job in work]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(args.jobs, len(work)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_model_in_process, *job, args, out) for job in work]
        return [future.result() for future in futures]


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    import os

    from noise_exp.files import writable_folder
    from noise_exp.params import integer_param, real_param

    args = _parser().parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    integer_param("--seeds", args.seeds, 1)
    integer_param("--steps", args.steps, 1)
    integer_param("--jobs", args.jobs, 1)
    integer_param("--threads", args.threads, 1)
    writable_folder(args.out, "--out")
    if args.lr is not None:
        real_param("--lr", args.lr, 0.0)
    work = list(zip(args.models, _per_model("--prompts", args.prompts, args.models),
                    _per_model("--optimize-prompts", args.optimize_prompts, args.models)))
    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    if args.from_runs:
        return write_summary(out, *recount(out))
    started, load = time.perf_counter(), os.getloadavg()[0]
    runs, weights, rows = [], [], []
    for done, used, compared in run_models(work, args, out):
        runs.append(done)
        weights.append(used)
        rows += compared
    rows += digits_comparisons()
    weights.append(Weights("small_digits", "weights/small-digits", training_id(ROOT / "weights" / "small-digits"),
                           f"not rerun: figures of {DIGITS_DOC}"))
    summary = {"command": " ".join(["python scripts/reproduce_shapes.py", *(argv if argv is not None else sys.argv[1:])]),
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "wall_s": round(time.perf_counter() - started, 1),
               "load_average": [round(load, 2), round(os.getloadavg()[0], 2)], "runs": [asdict(r) for r in runs],
               "weights": [asdict(w) for w in weights]}
    return write_summary(out, summary, rows)


def write_summary(out: Path, summary: dict, rows: list[Comparison]) -> int:
    """summary.json and summary.md in `out`, with the comparisons and the tie rule they were counted with."""
    from noise_exp.report.sweep import tie_tolerances

    folders = [out / f"{method}_{run['model']}" for run in summary["runs"] for method in ("select", "optimize")]
    summary["tie_tolerance"] = tie_tolerances([folder for folder in folders if folder.is_dir()])
    summary["comparisons"] = [asdict(r) for r in rows]
    text = summary_markdown(summary, rows)
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    atomic_write_bytes(out / "summary.md", text.encode("utf-8"))
    print(text)
    print(f"written: {out / 'summary.md'}")
    return 0


# What summary_markdown reads of a summary.json and of each of its runs.
SUMMARY_KEYS = {"args", "runs", "weights", "command", "finished_utc", "wall_s", "load_average"}
RUN_KEYS = {"model", "dim", "guidance", "select_prompts", "optimize_prompts", "lr", "seconds"}


def recount(out: Path) -> tuple[dict, list[Comparison]]:
    """The summary of an earlier run in `out`, its comparisons counted again from its run folders (nothing sampled)."""
    saved = out / "summary.json"
    if not saved.is_file():
        raise NoiseExpError(f"{saved} is missing: --from-runs re-counts the runs of an earlier reproduce_shapes --out")
    try:
        summary = json.loads(saved.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise NoiseExpError(f"{saved} is not valid JSON ({err}): --from-runs needs an earlier run's summary") from err
    runs = summary.get("runs") if isinstance(summary, dict) else None
    missing = (SUMMARY_KEYS - set(summary) if isinstance(runs, list) else {"runs"}) | {
        key for run in (runs or []) for key in (RUN_KEYS - set(run) if isinstance(run, dict) else RUN_KEYS)}
    if missing:
        raise NoiseExpError(f"{saved} lacks {', '.join(sorted(missing))}: it is not a reproduce_shapes summary")
    rows = []
    for run in summary["runs"]:
        for table, method, count in (("selection", "select", run["select_prompts"]),
                                     ("optimization", "optimize", run["optimize_prompts"])):
            run_dir = out / f"{method}_{run['model']}"
            if count and not (run_dir / "results.csv").is_file():
                raise NoiseExpError(f"{run_dir} has no results.csv: --from-runs needs the run folders of {saved}")
            if count:
                rows += run_comparisons(run_dir, count, run["model"], run["dim"], run["guidance"], table,
                                        *PAIRS[table])
    summary["recounted_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return summary, rows + digits_comparisons()


def summary_markdown(summary: dict, rows: list[Comparison]) -> str:
    from noise_exp.report.tables import ties_rule

    args = summary["args"]
    ties = ties_rule(summary.get("tie_tolerance"), [JUDGE, REWARD, STABILITY])
    recounted = (f" Comparisons re-counted from the run folders (`--from-runs`) {summary['recounted_utc']}."
                 if summary.get("recounted_utc") else "")
    runs = "\n".join(f"| {r['model']} | {r['dim']} | {r['guidance']:g} | {r['select_prompts']} | {args['seeds']} | "
                      f"{r['optimize_prompts']} | {args['steps']} | {r['lr']:.4g} | "
                      f"{' / '.join(str(s) for s in r['seconds'].values())} |" for r in summary["runs"])
    weights = "\n".join(f"| {w['model']} | {w['folder']} | {w['training_sha']} | {w['snapshot']} |"
                         for w in summary["weights"])
    return (f"# Shapes world: Tables 1 and 2 analogues at three latent sizes\n\n"
            f"`{summary['command']}`: {summary['wall_s'] / 60:.1f} min wall, finished {summary['finished_utc']}, "
            f"{args['threads']} torch thread(s), load average {summary['load_average'][0]} at the start and "
            f"{summary['load_average'][1]} at the end.\n\n"
            f"Selection: the first N shapes_bench prompts (tags balanced), K seeds of their own each. Optimization: "
            f"the first N prompts, seed = prompt id, n steps at lr (paper_equivalent_lr unless --lr), momentum 0.5, "
            f"cosine. T = 10 and the guidance of the models' configs. Digits (d = 64): {DIGITS_DOC}, not rerun "
            f"(its documented counts, ties exact).{recounted}\n\n{ties}\n\n"
            f"| model | d | guidance | selection prompts | K | optimization prompts | n | lr | seconds |\n"
            f"|---|---:|---:|---:|---:|---:|---:|---:|---|\n{runs}\n\n"
            f"| model | weights | sha256(training.json)[:12] | loaded from |\n|---|---|---|---|\n{weights}\n\n"
            f"## All prompts, every metric\n\n{markdown(rows)}\n"
            f"## The judge (shapes_geneval) per tag: mean = accuracy\n\n{markdown(rows, per_tag=True)}")


if __name__ == "__main__":
    sys.exit(main())
