"""Orchestration of one job: prompts -> method per prompt -> run folder, with resume and a summary."""
from __future__ import annotations

import contextlib
import importlib
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from noise_exp.candidates.keys import BankScope
from noise_exp.candidates.session import BankSession, write_run_link
from noise_exp.candidates.storage import CandidateBank
from noise_exp.data.prompts import Prompt, PromptSet, single_prompt
from noise_exp.errors import NoiseExpError, RunInterrupted
from noise_exp.files import write_failure
from noise_exp.methods.compute import PeakMemory
from noise_exp.params import flag_param
from noise_exp.methods.declaration import Comparison, VariantSpec
from noise_exp.methods.method import Method, MethodOutput, validate_variants
from noise_exp.logging import NullLogger, RunLogger
from noise_exp.rundir.declaration import write_declaration
from noise_exp.rundir.fingerprint import (RUN_FILE, WEIGHTS_KEY, RunFingerprint, check_fingerprint, read_fingerprint,
                                          run_fingerprint, with_weights, write_fingerprint)
from noise_exp.rundir.lock import RunLock
from noise_exp.rundir.results import RESULTS_FILE
from noise_exp.rundir.store import RunStore, record_rows

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


def _quiet_libraries(*names: str) -> None:
    """Silence the info logs and loading bars of `diffusers` / `transformers`. Importing diffusers costs seconds,
    so this is called where a library is about to be used, not before the checks that can stop a run."""
    for name in names:
        library = importlib.import_module(name)
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the configured method over the prompts; returns summary metrics.

    Everything a user can get wrong is checked before the first candidate: prompts, method parameters, evaluator
    weights, the folder's lock and its recorded settings. Each finished prompt is on disk before the next starts.
    """
    run_dir = Path(run_dir)
    prompts = load_prompts(cfg)
    method: Method = build(cfg.method, "method")
    named = cfg.get("save_images")  # unset: the variants the method declares saved
    save_images = method.saved_variants() if named is None else validate_variants(named, method.variant_names())
    evaluators = _evaluators(cfg)  # loads their weights now: a missing or corrupt checkpoint stops the run here
    if evaluators and not save_images:
        raise NoiseExpError("evaluators score the saved images, but save_images=[] saves none; name the variants "
                            "to score, e.g. save_images=[stable,unstable]")
    _check_candidate_scoring(cfg, method, evaluators)
    _check_prompts(prompts, method, evaluators)
    tolerances = (cfg.get("report") or {}).get("tie_tolerance")
    if tolerances is not None:  # checked now, not by the report after the last prompt
        from noise_exp.report.sweep import tolerance_table

        tolerance_table(tolerances, "the config")
    store = RunStore(run_dir, save_noise=bool(cfg.get("save_noise", True)))
    with _writable(run_dir, store), RunLock(run_dir):
        bank = _candidate_bank(cfg)
        fingerprint = _checked_fingerprint(cfg, run_dir, store)
        write_declaration(run_dir, method.declaration())
        todo = [p for p in prompts if not store.is_done(p)]
        resumed = len(prompts) - len(todo)
        if resumed:
            log.info("resuming: %d of %d prompts already done in %s", resumed, len(prompts), run_dir)
        tracker: RunLogger = build(cfg.logger, "logger") if cfg.get("logger") else NullLogger()
        tracker.start(OmegaConf.to_container(cfg, resolve=True), run_dir)
        try:
            start = time.perf_counter()
            session = None
            if todo:
                session = _generate(cfg, method, todo, len(prompts), save_images, store, tracker, fingerprint,
                                    bank, evaluators)
            elif not (run_dir / RESULTS_FILE).exists():
                store.write_tables()
            metrics = summarize(store, prompts, resumed, time.perf_counter() - start,
                                session.summary() if session else "", method.variants)
            if session:
                metrics.update(bank_reused=session.reused, bank_computed=session.computed)
            metrics["objective"] = metrics.get(f"stability/{method.main_variant}")
            dataset_report = _dataset_report(cfg)
            if dataset_report is not None:  # e.g. multi-view orbits: per-view scores vs ground truth (Table 3)
                result = dataset_report(run_dir, evaluators, model_name=cfg.model.get("name", "model"))
                print(f"report: {result.markdown}", flush=True)
            else:  # the report always matches results.csv: refreshed after every run, scored or not
                _score_and_report(store, evaluators, tracker)
        finally:
            tracker.finish()
    return metrics


def _generate(cfg: DictConfig, method: Method, todo: list[Prompt], total: int, save_images: list[str],
              store: RunStore, tracker: RunLogger, fingerprint: RunFingerprint, bank: CandidateBank | None = None,
              evaluators: dict[str, Any] | None = None) -> BankSession | None:
    """Load the model, record the weights' identity, then run the method prompt by prompt (with the candidate bank
    when `bank.path` is set); returns the bank session, whose counts the summary reports."""
    _quiet_libraries("diffusers", "transformers")
    model = build(cfg.model, "model")
    log.info("model %s", model.describe())
    fingerprint = _record_weights(cfg, store, fingerprint)
    method.check_settings(fingerprint.settings)
    session = None
    if bank is not None:  # the scope reuses the weights hash just computed for run.json
        session = BankSession(bank, BankScope.from_settings(fingerprint.settings),
                              OmegaConf.to_container(cfg.model, resolve=True),
                              run=str(store.run_dir), keep_images=bool(cfg.bank.get("images", True)))
        method.attach_bank(session, evaluators or {})
        write_run_link(store.run_dir, session)
    with tqdm(total=total, initial=total - len(todo), desc=f"{method.name} {model.name}", unit="prompt",
              dynamic_ncols=True, file=sys.stderr) as bar:
        for prompt in todo:
            cond = model.condition(prompt)
            with PeakMemory(model.device) as peak:
                output = method.run(model, cond, prompt.id, progress=lambda s: bar.set_postfix_str(s, refresh=False))
            for variant in output.variants:
                variant.peak_memory_mb = peak.mib
            images = _decode_kept(model, cond, output, save_images)
            record = store.write_prompt(prompt, output, images)
            tracker.log_prompt(*_tracked(record, store.run_dir, method.comparisons))
            bar.set_postfix_str(" ".join(f"{v.name}={v.stability:.4f}" for v in output.variants))
            bar.update(1)
    return session


def _check_candidate_scoring(cfg: DictConfig, method: Method, evaluators: dict[str, Any]) -> None:
    """`method.score_candidates` keeps its scores in the bank and scores with the run's evaluators (text-only ones)."""
    if not method.scores_candidates:
        return
    if not (cfg.get("bank") or {}).get("path"):
        raise NoiseExpError("method.score_candidates=true needs bank.path=<folder>: the candidates' scores are kept "
                            "in the candidate bank")
    if not evaluators:
        raise NoiseExpError("method.score_candidates=true needs evaluators to score with (evaluator=[...])")
    with_references = [name for name, evaluator in evaluators.items() if getattr(evaluator, "needs_references", False)]
    if with_references:
        raise NoiseExpError(f"method.score_candidates cannot use {', '.join(with_references)}: candidates have no "
                            f"reference images")


def _check_prompts(prompts: list[Prompt], method: Method, evaluators: dict[str, Any]) -> None:
    """Every scorer (the evaluators, a method's verifier) can judge every prompt, checked before generating."""
    texts = [prompt.text for prompt in prompts]
    for scorer in [*evaluators.values(), getattr(method, "verifier", None)]:
        if hasattr(scorer, "check_prompts"):
            scorer.check_prompts(texts)


def _candidate_bank(cfg: DictConfig) -> CandidateBank | None:
    """The bank folder of `bank.path` (made if missing), or None."""
    bank = cfg.get("bank") or {}
    path = bank.get("path")
    if path:
        flag_param("bank.images", bank.get("images", True))
    return CandidateBank(Path(str(path)).expanduser(), create=True) if path else None


def _checked_fingerprint(cfg: DictConfig, run_dir: Path, store: RunStore) -> RunFingerprint:
    """The folder's recorded settings must equal this run's (weights are checked once the model is loaded);
    a fresh folder records them."""
    current = run_fingerprint(cfg)
    recorded = read_fingerprint(run_dir)
    if recorded is None:
        if store.records():
            raise NoiseExpError(f"{run_dir} holds results but no {RUN_FILE} (made by an older noise-exp, or the file "
                                f"was deleted): its settings are unknown; write to a new folder (hydra.run.dir=...)")
        write_fingerprint(run_dir, current)
        return current
    if not store.records():  # a folder whose run finished no prompt: start over with these settings
        write_fingerprint(run_dir, current)
        return current
    comparable = RunFingerprint({k: v for k, v in recorded.settings.items() if k != WEIGHTS_KEY}, recorded.hydra)
    check_fingerprint(run_dir, current, comparable)
    return recorded


def _record_weights(cfg: DictConfig, store: RunStore, fingerprint: RunFingerprint) -> RunFingerprint:
    """Add the loaded weights' identity to run.json, or refuse if they differ from the ones the folder holds;
    returns the fingerprint with the weights (the candidate bank's scope is taken from it)."""
    pretrained = cfg.model.get("pretrained")
    if not pretrained:
        return fingerprint
    current = with_weights(RunFingerprint({k: v for k, v in fingerprint.settings.items() if k != WEIGHTS_KEY}),
                           str(pretrained))
    if WEIGHTS_KEY in fingerprint.settings and store.records():
        check_fingerprint(store.run_dir, current, fingerprint)
    else:
        write_fingerprint(store.run_dir, current)
    return current


@contextlib.contextmanager
def _writable(run_dir: Path, store: RunStore):
    """Storage faults (full disk, read-only or forbidden folder) and Ctrl-C become one line that says what is kept."""
    def kept() -> str:
        return f"{len(store.records())} finished prompts are kept in {run_dir}"

    try:
        yield
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted after {len(store.records())} prompts; rerun the same command to resume") \
            from None
    except OSError as err:
        reason = write_failure(err, run_dir)
        if reason is None:
            raise
        raise NoiseExpError(f"{reason}; {kept()}; fix it and rerun the same command to resume") from None


def _tracked(record: dict[str, Any], run_dir: Path,
             comparisons: Sequence[Comparison]) -> tuple[list[dict], list[dict], list[tuple[str, Path, Path]]]:
    """A finished prompt as the tracker wants it: results rows, trace rows and the image pairs to compare."""
    rows = record_rows(record)
    images = {v["variant"]: run_dir / v["image"] for v in record["variants"] if v["image"]}
    pairs = [(f"{record['prompt_id']}: {c.a} vs {c.b}", images[c.a], images[c.b]) for c in comparisons
             if c.a in images and c.b in images]
    return rows.results, rows.trace, pairs


def _decode_kept(model: Any, cond: Any, output: MethodOutput, save_images: list[str]) -> dict[str, Any]:
    kept = [v for v in output.variants if v.name in save_images]
    if not kept:
        return {}
    import torch

    images = model.decode(torch.stack([v.latents for v in kept]), cond)
    return {v.name: image for v, image in zip(kept, images)}


def summarize(store: RunStore, prompts: list[Prompt], resumed: int, seconds: float, note: str = "",
              variants: Sequence[VariantSpec] = ()) -> dict[str, Any]:
    """Mean stability per variant over this job's prompts, printed as the one-line summary (with `note`, e.g. the
    bank's reuse) and returned as metrics.

    For a method with an optimized variant (`VariantSpec.starts_from`) it also counts the prompts that ended less
    stable than they started: Algorithm 2 holds eps' constant within a step, so a step can lower stability.
    """
    ids = {p.id for p in prompts}
    records = [r for r in store.records() if r["prompt_id"] in ids]
    by_variant: dict[str, list[float]] = {}
    for record in records:
        for v in record["variants"]:
            if not math.isnan(float(v["stability"])):  # methods that never invert (best_of_n, random, reward_opt)
                by_variant.setdefault(v["variant"], []).append(float(v["stability"]))
    means = {f"stability/{k}": sum(v) / len(v) for k, v in by_variant.items()}
    parts = " ".join(f"{k}={sum(v) / len(v):.4f}" for k, v in by_variant.items()) or "- (no variant was inverted)"
    worse = _less_stable_after_optimization(records, variants)
    extra = f" | {worse} of {len(records)} prompts ended less stable than they started" if worse is not None else ""
    extra += f" | {note}" if note else ""
    print(f"noise-exp: {len(prompts)} prompts ({resumed} already done) in {seconds:.1f}s | mean stability {parts}"
          f"{extra}\nresults: {store.run_dir / RESULTS_FILE}", flush=True)
    return {"num_prompts": len(prompts), "seconds": seconds, **means,
            **({"less_stable_after_optimization": worse} if worse is not None else {})}


def _less_stable_after_optimization(records: list[dict[str, Any]], variants: Sequence[VariantSpec]) -> int | None:
    """Prompts whose optimized noise is less stable than the noise it started from (`starts_from`); None when no
    prompt has both stabilities (no optimized variant, or a method that never inverts)."""
    count, seen = 0, False
    for record in records:
        stability = {v["variant"]: float(v["stability"]) for v in record["variants"]}
        for spec in variants:
            end, start = stability.get(spec.name, math.nan), stability.get(spec.starts_from or "", math.nan)
            if not (math.isnan(end) or math.isnan(start)):
                seen = True
                count += end < start
    return count if seen else None


def _evaluators(cfg: DictConfig) -> dict[str, Any]:
    """The configured evaluators, built (and their weights loaded) the same way `noise_exp.score` builds them."""
    from noise_exp.evaluators import build_evaluators

    if not cfg.get("evaluator"):
        return {}
    _quiet_libraries("transformers")
    return build_evaluators(OmegaConf.to_container(cfg.evaluator, resolve=True))


def _dataset_report(cfg: DictConfig) -> Any:
    """The dataset's own post-run report (`dataset.report` node), if it has one and the dataset was used."""
    node = None if cfg.get("prompt") else (cfg.get("dataset") or {}).get("report")
    return build(node, "dataset.report") if node else None


def _score_and_report(store: RunStore, evaluators: dict[str, Any], tracker: RunLogger) -> None:
    """Score the kept images that have no score yet (scores live in the per-prompt records), then rewrite the
    report so it always matches results.csv (and track it)."""
    from noise_exp.report import write_report
    from noise_exp.rundir.scoring import score_records

    if evaluators and score_records(store, evaluators, missing_only=True):
        store.write_tables()
    result = write_report([store.run_dir], store.run_dir / "report")
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
