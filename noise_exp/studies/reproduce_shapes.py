"""The paper's Tables 1 and 2 on the shapes world's two models, next to the digits result (`make reproduce-shapes`).

    python -m noise_exp.studies reproduce_shapes [prompts=[36[,N_L]]] [seeds=100] [optimize_prompts=[24[,N_L]]]
        [steps=20] [lr=RULE] [models=[small_shapes,small_shapes_l]] [jobs=1] [out=DIR] [quick=true]

Knobs and their values: conf/study/reproduce_shapes.yaml. Prompt counts take one value, or one per model. `jobs=2`
runs the models in two processes at once (one core each; `make reproduce-shapes` does), so the wall time is the
slower model's: with the defaults (36 and 24 prompts per model) 20.7 min on an idle 2-core machine (small_shapes
13 min, small_shapes_l 20.3 min; docs/shapes_reproduction.md).

- Table 1 analogue (selection, Algorithm 1): the first `prompts` prompts of dataset=shapes_bench (the tags come
  in turn, so a multiple of 6 is balanced), each keeping the most and the least stable of K seeds of its own
  (method.seeds_per_prompt=true: prompt i tries seeds i*K .. i*K+K-1, so repeated captions get fresh noise).
- Table 2 analogue (optimization, Algorithm 2): the first `optimize_prompts` prompts, prompt i from seed i,
  n = `steps` steps, momentum 0.5, cosine schedule, at the lr of `paper_equivalent_lr` (the project's
  lr-scaling rule, the one the reproduce_small study uses: lr 0.2 at d = 64 over 50 steps).
- Both at the models' configured T = 10 and guidance (2 for small_shapes, 3 for small_shapes_l), judged by the
  exact judge (shapes_geneval, per tag) and the learned reward (shapes_reward).
- The digits model (d = 64) is not rerun: its rows are the committed figures of `make reproduce-small`
  (`reference`, results/reference/reproduce_small.csv, the table of docs/small_model.md), their p-values and
  intervals recomputed from the counts.

Every job goes through the runner as `python run.py model=<m> dataset=shapes_bench method=...
"evaluator=[shapes_geneval,shapes_reward]"` would. Each model's weights folder is first copied into
<out>/weights/, so weights replaced while the study runs cannot mix into its results; the summary names them by
the first 12 hex digits of the sha256 of their training.json. Rerunning with the same `out` resumes finished
prompts on the same snapshot (use a new `out` for new weights). Writes <out>/summary.md and summary.json.
`from_runs=true` samples nothing: it re-counts the comparisons of the run folders an earlier run left in `out`
(after a change of the counting rule, e.g. `report.tie_tolerance`) and rewrites its summary, keeping what ran and
its times.

A pair is a tie when its scores differ by at most the metric's `report.tie_tolerance` (1e-3 for shapes_reward, 1e-6
float noise for the judge's 0/1 and stability; `noise_exp.report.tables.tie_tolerance_of`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from noise_exp.config import PROJECT_ROOT as ROOT
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes
from noise_exp.methods.optimization import paper_equivalent_lr
from noise_exp.report.tables import sign_test_p
from noise_exp.studies.common import project_path, shown
from noise_exp.studies.reproduce_small import SUMMARY_COLUMNS
from noise_exp.training.common import training_id

if TYPE_CHECKING:
    from omegaconf import DictConfig

JUDGE, REWARD, STABILITY = "shapes_geneval", "shapes_reward", "stability"
EVALUATORS = f"evaluator=[{JUDGE},{REWARD}]"
SHAPES_MODELS = ("small_shapes", "small_shapes_l")
TAG_COUNT = 6  # shapes_bench cycles through its six tags


@dataclass
class Config:
    """conf/study/reproduce_shapes.yaml."""

    prompts: list[int]  # selection prompts: one count, or one per model (multiples of 6; 0 skips)
    seeds: int  # K, candidate seeds per selection
    optimize_prompts: list[int]  # optimization prompts: one count, or one per model (multiples of 6; 0 skips)
    steps: int  # optimization steps n
    lr: Optional[float]  # optimization lr (null: paper_equivalent_lr)
    models: list[str]
    out: Path
    threads: int  # torch threads (1 on a shared machine)
    jobs: int  # models run at once, each in its own process
    from_runs: bool  # sample nothing: re-count the comparisons of the runs in `out` and rewrite its summary
    reference: Path  # the digits rows: make reproduce-small's committed summary


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
    if not (target / "training.json").is_file():  # a copy is renamed in whole: a killed one leaves no training.json
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        shutil.copytree(source, partial, dirs_exist_ok=True)  # copies the source folder's mode over mkdtemp's 0700
        os.replace(partial, target)
    elif training_id(target) != training_id(source):
        print(f"note: {model} resumes on its snapshot {shown(target)} (training.json {training_id(target)}); "
              f"{shown(source)} is now {training_id(source)}: use a new out= for it", flush=True)
    return Weights(model, shown(source), training_id(target), shown(target))


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
PAIRS = {"selection": ("stable", "unstable"), "optimization": ("optimized", "original")}


def digits_comparisons(reference: Path) -> list[Comparison]:
    """The digits model's measured pairs (a reproduce_small summary.csv) as rows, with the win rate (ties half),
    Wilson interval and sign test recomputed; A is stable (selection) or optimized (optimization)."""
    import pandas as pd

    from noise_exp.report.tables import PairCounts

    path = project_path(reference)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise NoiseExpError(f"reference {path}: cannot read it as a reproduce_small summary.csv ({err})") from None
    if list(frame.columns) != list(SUMMARY_COLUMNS) or not frame["table"].isin(list(PAIRS)).all():
        raise NoiseExpError(f"reference {path}: not a reproduce_small summary.csv (columns {', '.join(SUMMARY_COLUMNS)}; "
                            f"table selection or optimization)")
    rows = []
    for r in frame.itertuples(index=False):
        counts = PairCounts(int(r.wins), int(r.ties), int(r.losses))
        rows.append(Comparison("small_digits", DIGITS_DIM, float(r.guidance), r.table, *PAIRS[r.table], r.metric,
                               "all", counts.n, counts.wins, counts.ties, counts.losses, float(r.mean_a),
                               float(r.mean_b), counts.win_rate, *counts.interval,
                               sign_test_p(counts.wins, counts.losses)))
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


def check_config(config: Config) -> list[tuple[str, int, int]]:
    """(model, selection prompts, optimization prompts) of each model, or a one-line error for the first bad knob
    (before any work)."""
    from noise_exp.files import writable_folder
    from noise_exp.params import integer_param, real_param

    integer_param("seeds", config.seeds, 1)
    integer_param("steps", config.steps, 1)
    integer_param("jobs", config.jobs, 1)
    integer_param("threads", config.threads, 1)
    writable_folder(config.out, "out")
    if config.lr is not None:
        real_param("lr", config.lr, 0.0)
    unknown = [model for model in config.models if model not in SHAPES_MODELS]
    if unknown or not config.models:
        raise NoiseExpError(f"models: {', '.join(unknown) or 'none'}; choose among {', '.join(SHAPES_MODELS)}")
    return list(zip(config.models, _per_model("prompts", config.prompts, config.models),
                    _per_model("optimize_prompts", config.optimize_prompts, config.models)))


def _per_model(key: str, counts: list[int], models: list[str]) -> list[int]:
    if len(counts) not in (1, len(models)):
        raise NoiseExpError(f"{key} takes one count or one per model ({len(models)}), got {len(counts)}")
    for count in counts:
        if count < 0 or count % TAG_COUNT:
            raise NoiseExpError(f"{key}: prompt counts must be multiples of {TAG_COUNT} (shapes_bench cycles through "
                                f"its {TAG_COUNT} tags), got {count}")
    return counts * len(models) if len(counts) == 1 else counts


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


def run_model(model: str, select_prompts: int, optimize_prompts: int, config: Config, out: Path
              ) -> tuple[ModelRun, Weights, list[Comparison]]:
    """Both analogues on one model, from a snapshot of its weights; the comparisons cover the first N prompts."""
    weights = snapshot_weights(model, out)
    cfg = model_config(model).model
    dim = latent_dim(ROOT / weights.snapshot, cfg.height, cfg.width)
    lr = paper_equivalent_lr(dim, config.steps) if config.lr is None else config.lr
    done = ModelRun(model, dim, cfg.guidance_scale, select_prompts, optimize_prompts, lr, {})
    pin = f"model.pretrained={ROOT / weights.snapshot}"
    jobs = (("selection", "select", select_prompts,
             [f"method.num_seeds={config.seeds}", "method.seeds_per_prompt=true",
              f"method.batch_size={min(config.seeds, 25)}"]),
            ("optimization", "optimize", optimize_prompts, [f"method.steps={config.steps}", f"method.lr={lr}"]))
    rows = []
    for table, method, count, overrides in jobs:
        if count:
            run_dir = out / f"{method}_{model}"
            done.seconds[table] = round(run_job(model, [pin, f"method={method}", f"dataset.limit={count}", *overrides],
                                                      run_dir), 1)
            rows += run_comparisons(run_dir, count, model, dim, cfg.guidance_scale, table, *PAIRS[table])
    return done, weights, rows


def _run_model_in_process(model: str, select_prompts: int, optimize_prompts: int, config: Config,
                          out: Path) -> tuple[ModelRun, Weights, list[Comparison]]:
    """run_model in a worker process of `jobs`, with the parent's torch thread count."""
    torch.set_num_threads(config.threads)
    return run_model(model, select_prompts, optimize_prompts, config, out)


def run_models(work: list[tuple[str, int, int]], config: Config, out: Path
               ) -> list[tuple[ModelRun, Weights, list[Comparison]]]:
    """run_model for every (model, selection prompts, optimization prompts), in `jobs` processes at once (spawned:
    a forked torch can deadlock), results in the order given."""
    if config.jobs <= 1 or len(work) <= 1:
        return [run_model(*job, config, out) for job in work]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(config.jobs, len(work)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_model_in_process, *job, config, out) for job in work]
        return [future.result() for future in futures]


def run(config: Config, command: str) -> int:
    """Both analogues on each model (or, from_runs, a re-count of an earlier run's folders); writes the summary."""
    work = check_config(config)
    torch.set_num_threads(config.threads)
    out = config.out.resolve()
    if config.from_runs:
        return write_summary(out, *recount(out, config.reference))
    digits = digits_comparisons(config.reference)  # a bad reference file stops the study before any work
    started, load = time.perf_counter(), os.getloadavg()[0]
    runs, weights, rows = [], [], []
    for done, used, compared in run_models(work, config, out):
        runs.append(done)
        weights.append(used)
        rows += compared
    rows += digits
    weights.append(Weights("small_digits", "weights/small-digits", training_id(ROOT / "weights" / "small-digits"),
                           f"not rerun: figures of {DIGITS_DOC}"))
    summary = {"command": command,
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
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


def recount(out: Path, reference: Path) -> tuple[dict, list[Comparison]]:
    """The summary of an earlier run in `out`, its comparisons counted again from its run folders (nothing sampled)."""
    saved = out / "summary.json"
    if not saved.is_file():
        raise NoiseExpError(f"{saved} is missing: from_runs re-counts the runs of an earlier reproduce_shapes out=")
    try:
        summary = json.loads(saved.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise NoiseExpError(f"{saved} is not valid JSON ({err}): from_runs needs an earlier run's summary") from err
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
                raise NoiseExpError(f"{run_dir} has no results.csv: from_runs needs the run folders of {saved}")
            if count:
                rows += run_comparisons(run_dir, count, run["model"], run["dim"], run["guidance"], table,
                                        *PAIRS[table])
    summary["recounted_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return summary, rows + digits_comparisons(reference)


def summary_markdown(summary: dict, rows: list[Comparison]) -> str:
    from noise_exp.report.tables import ties_rule

    args = summary["args"]
    ties = ties_rule(summary.get("tie_tolerance"), [JUDGE, REWARD, STABILITY])
    recounted = (f" Comparisons re-counted from the run folders (`from_runs=true`) {summary['recounted_utc']}."
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
            f"the first N prompts, seed = prompt id, n steps at lr (paper_equivalent_lr unless lr=), momentum 0.5, "
            f"cosine. T = 10 and the guidance of the models' configs. Digits (d = 64): {DIGITS_DOC}, not rerun "
            f"(its documented counts, ties exact).{recounted}\n\n{ties}\n\n"
            f"| model | d | guidance | selection prompts | K | optimization prompts | n | lr | seconds |\n"
            f"|---|---:|---:|---:|---:|---:|---:|---:|---|\n{runs}\n\n"
            f"| model | weights | sha256(training.json)[:12] | loaded from |\n|---|---|---|---|\n{weights}\n\n"
            f"## All prompts, every metric\n\n{markdown(rows)}\n"
            f"## The judge (shapes_geneval) per tag: mean = accuracy\n\n{markdown(rows, per_tag=True)}")

