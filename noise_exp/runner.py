"""Orchestration of one job: prompts -> method per prompt -> run folder, with resume and a summary."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from noise_exp.data.prompts import Prompt, PromptSet, single_prompt
from noise_exp.errors import NoiseExpError
from noise_exp.methods.method import Method, MethodOutput, validate_variants
from noise_exp.logging import NullLogger, RunLogger
from noise_exp.report.tables import COMPARISONS
from noise_exp.results import RunStore, record_rows

log = logging.getLogger(__name__)


def build(node: DictConfig, group: str) -> Any:
    """`hydra.utils.instantiate`, unwrapping Hydra's exception so user errors keep their one-line message."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, NoiseExpError):
            raise cause from None
        raise NoiseExpError(f"could not build the {group} config: {cause or err}".replace("\n", " ")) from err


def load_prompts(cfg: DictConfig) -> list[Prompt]:
    """`prompt="..."` wins over the dataset group."""
    if cfg.get("prompt"):
        return single_prompt(cfg.prompt)
    dataset: PromptSet = build(cfg.dataset, "dataset")
    return dataset.load()


def _quiet_libraries() -> None:
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the configured method over the prompts; returns summary metrics."""
    _quiet_libraries()
    run_dir = Path(run_dir)
    prompts = load_prompts(cfg)
    save_images = validate_variants(cfg.get("save_images") or [])
    method: Method = build(cfg.method, "method")
    store = RunStore(run_dir, save_noise=bool(cfg.get("save_noise", True)))
    todo = [p for p in prompts if not store.is_done(p.id)]
    resumed = len(prompts) - len(todo)
    if resumed:
        log.info("resuming: %d of %d prompts already done in %s", resumed, len(prompts), run_dir)
    tracker: RunLogger = build(cfg.logger, "logger") if cfg.get("logger") else NullLogger()
    tracker.start(OmegaConf.to_container(cfg, resolve=True), run_dir)
    try:
        start = time.perf_counter()
        if todo:
            model = build(cfg.model, "model")
            log.info("model %s", model.describe())
            with tqdm(total=len(prompts), initial=resumed, desc=f"{method.name} {model.name}", unit="prompt",
                      dynamic_ncols=True, file=sys.stderr) as bar:
                for prompt in todo:
                    cond = model.condition(prompt)
                    output = method.run(model, cond, prompt.id, progress=lambda s: bar.set_postfix_str(s, refresh=False))
                    images = _decode_kept(model, cond, output, save_images)
                    record = store.write_prompt(prompt, output, images)
                    tracker.log_prompt(*_tracked(record, run_dir))
                    bar.set_postfix_str(" ".join(f"{v.name}={v.stability:.4f}" for v in output.variants))
                    bar.update(1)
        elif not (run_dir / "results.csv").exists():
            store.write_tables()
        metrics = summarize(store, len(prompts), resumed, time.perf_counter() - start)
        metrics["objective"] = metrics.get(f"stability/{method.main_variant}")
        dataset_report = _dataset_report(cfg)
        if dataset_report is not None:  # e.g. multi-view orbits: per-view scores vs ground truth (Table 3)
            result = dataset_report(run_dir, _evaluators(cfg), model_name=cfg.model.get("name", "model"))
            print(f"report: {result.markdown}", flush=True)
        elif cfg.get("evaluator"):
            _score_and_report(cfg, run_dir, tracker)
    finally:
        tracker.finish()
    return metrics


def _tracked(record: dict[str, Any], run_dir: Path) -> tuple[list[dict], list[dict], list[tuple[str, Path, Path]]]:
    """A finished prompt as the tracker wants it: results rows, trace rows and the image pairs to compare."""
    rows = record_rows(record)
    images = {v["variant"]: run_dir / v["image"] for v in record["variants"] if v["image"]}
    pairs = [(f"{record['prompt_id']}: {a} vs {b}", images[a], images[b]) for a, b in COMPARISONS
             if a in images and b in images]
    return rows.results, rows.trace, pairs


def _decode_kept(model: Any, cond: Any, output: MethodOutput, save_images: list[str]) -> dict[str, Any]:
    kept = [v for v in output.variants if v.name in save_images]
    if not kept:
        return {}
    import torch

    images = model.decode(torch.stack([v.latents for v in kept]), cond)
    return {v.name: image for v, image in zip(kept, images)}


def summarize(store: RunStore, num_prompts: int, resumed: int, seconds: float) -> dict[str, Any]:
    """Mean stability per variant, printed as the one-line summary and returned as metrics."""
    by_variant: dict[str, list[float]] = {}
    for record in store.records():
        for v in record["variants"]:
            by_variant.setdefault(v["variant"], []).append(float(v["stability"]))
    means = {f"stability/{k}": sum(v) / len(v) for k, v in by_variant.items()}
    parts = " ".join(f"{k}={sum(v) / len(v):.4f}" for k, v in by_variant.items())
    print(f"noise-exp: {num_prompts} prompts ({resumed} already done) in {seconds:.1f}s | mean stability {parts}\n"
          f"results: {store.run_dir / 'results.csv'}", flush=True)
    return {"num_prompts": num_prompts, "seconds": seconds, **means}


def _evaluators(cfg: DictConfig) -> dict[str, Any]:
    return {name: build(conf, f"evaluator {name}") for name, conf in (cfg.get("evaluator") or {}).items()}


def _dataset_report(cfg: DictConfig) -> Any:
    """The dataset's own post-run report (`dataset.report` node), if it has one and the dataset was used."""
    node = None if cfg.get("prompt") else (cfg.get("dataset") or {}).get("report")
    return build(node, "dataset.report") if node else None


def _score_and_report(cfg: DictConfig, run_dir: Path, tracker: RunLogger) -> None:
    """Score the saved images with the configured evaluators, then write the report (and track it)."""
    from noise_exp.report import write_report
    from noise_exp.scoring import score_run

    score_run(run_dir, _evaluators(cfg))
    result = write_report([run_dir], run_dir / "report")
    tracker.log_summary({"means": result.means}, {"winning_rates": result.winning_rates},
                        figures={k: v for k, v in result.files.items() if v.suffix == ".png"})
    print(f"report: {result.markdown}", flush=True)


def run_cli(cfg: DictConfig) -> float | None:
    """Hydra task: user errors become one line on stderr and exit code 2, never a traceback. In a sweep a user
    error fails only its job: Hydra records it and runs the other jobs, and the entry names every failed job at
    the end (noise_exp.sweep_callbacks); Ctrl-C still stops the whole sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    from noise_exp.errors import RunInterrupted, config_error_message

    hydra_cfg = HydraConfig.get()
    try:
        metrics = run_experiment(cfg, Path(hydra_cfg.runtime.output_dir))
    except (NoiseExpError, MissingMandatoryValue, InterpolationResolutionError) as err:  # `???` unset, bad ${...}
        error = err if isinstance(err, NoiseExpError) else NoiseExpError(config_error_message(err))
        if hydra_cfg.mode == RunMode.MULTIRUN and not isinstance(error, RunInterrupted):
            raise error from None
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)
    return metrics["objective"]
