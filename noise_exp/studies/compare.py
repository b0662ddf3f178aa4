"""`make compare`: the equal-compute comparison of noise methods, run and reported (docs/compare_methods.md).

Loads the model once to count the NFEs of one generation (G) and one round trip (R), sets every method's settings
per rung of the budget ladder from its `at_budget` (each registered method that has one, unless `methods`), runs
`experiment=compare_methods` as one Hydra multirun (methods x rungs, one torch thread), then writes the table and
the quality-vs-NFE plot; with `doc` the table goes into that Markdown file between its `<!-- compare:begin -->` /
`<!-- compare:end -->` markers. Knobs and their values: conf/study/compare.yaml.

    python -m noise_exp.studies compare                   # small_shapes, shapes_reward vs the judge
    python -m noise_exp.studies compare model=small_digits dataset=digits verifier=digit_classifier \\
        judge=digit_realism methods=[random,select,optimize,best_of_n]   # digit scorers are not differentiable
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from noise_exp.config import PROJECT_ROOT as ROOT
from noise_exp.errors import NoiseExpError, config_error_message
from noise_exp.files import atomic_write_bytes, writable_file, writable_folder
from noise_exp.methods.declaration import Budget
from noise_exp.methods.registry import compare_classes
from noise_exp.params import integer_param
from noise_exp.report.compare import rung_name
from noise_exp.studies.common import write_doc_block


@dataclass
class Config:
    """conf/study/compare.yaml."""

    model: str
    dataset: str
    prompts: int  # the dataset's first prompts (shapes_bench: tags in turn)
    verifier: str  # the scorer best_of_n and reward_opt see
    judge: str  # the held-out scorer no method sees
    ladder: list[int]  # budgets in generations
    methods: Optional[list[str]]  # null: every method with an at_budget
    out: Path
    doc: Optional[Path]  # Markdown file whose measured block gets the table


def ladder_budgets(ladder: Sequence[int], generation_nfe: int, roundtrip_nfe: int, latent_dim: int,
                   verifier: str) -> dict[str, Budget]:
    """x<b> -> the Budget of b generations of G NFEs (a round trip costs R) for every rung of the ladder."""
    if not ladder or min(ladder) < 1:
        raise NoiseExpError(f"the budget ladder must be budgets of at least one generation, got {list(ladder)}")
    return {rung_name(b): Budget(b, generation_nfe, roundtrip_nfe, latent_dim, verifier) for b in ladder}


def ladder_knobs(budgets: Mapping[str, Budget], classes: Sequence[type] | None = None) -> dict[str, dict]:
    """method -> setting -> rung -> value, from each study method's `at_budget` (the verifier, `compare.verifier`
    in its compare_method yaml, is left out)."""
    knobs: dict[str, dict] = {}
    for cls in classes if classes is not None else compare_classes():
        for rung, budget in budgets.items():
            settings = cls.at_budget(budget)
            if settings is None:
                raise NoiseExpError(f"method {cls.name} sits out of rung {rung} but not of every rung")
            for key, value in settings.items():
                if value != budget.verifier:
                    knobs.setdefault(cls.name, {}).setdefault(key, {})[rung] = value
    return knobs


def compare_method_yaml(cls: type, budget: Budget) -> str:
    """conf/compare_method/<name>.yaml of a study method: its `at_budget` settings read from `compare.knobs` at the
    swept rung (the verifier from `compare.verifier`)."""
    lines = ["# @package _global_", f"# experiment=compare_methods: method={cls.name} at the swept rung (written by "
             f"studies.compare.compare_method_yaml)",
             "defaults:", f"  - override /method: {cls.name}", "method:"]
    for key, value in (cls.at_budget(budget) or {}).items():
        knob = f"compare.knobs.{cls.name}.{key}.${{compare.budget}}"
        source = "compare.verifier" if value == budget.verifier else knob
        lines.append(f"  {key}: ${{{source}}}")
    return "\n".join(lines) + "\n"


def knob_overrides(knobs: dict[str, dict]) -> list[str]:
    """Hydra overrides that set `compare.knobs` to `knobs` (rungs the experiment file lacks are added)."""
    return [f"++compare.knobs.{method}.{key}={{{','.join(f'{rung}:{value}' for rung, value in values.items())}}}"
            for method, settings in knobs.items() for key, values in settings.items()]


def study_overrides(budgets: Mapping[str, Budget], conf_dir: Path, classes: Sequence[type] | None = None
                    ) -> list[str]:
    """The multirun overrides of the study's jobs (methods x rungs): each method's compare_method yaml written to
    `conf_dir` (put on Hydra's search path) and the knobs it reads."""
    classes = list(classes if classes is not None else compare_classes())
    first = next(iter(budgets.values()))
    for cls in classes:
        atomic_write_bytes(Path(conf_dir) / "compare_method" / f"{cls.name}.yaml",
                           compare_method_yaml(cls, first).encode("utf-8"))
    return [f"+compare_method={','.join(cls.name for cls in classes)}", f"compare.budget={','.join(budgets)}",
            *knob_overrides(ladder_knobs(budgets, classes))]


def model_costs(overrides: list[str]) -> tuple[int, int, int]:
    """(G, R, d): NFEs of one generation and of one round trip, and the latent size, of the configured model."""
    import torch
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    from noise_exp.config import compose_config
    from noise_exp.methods.differentiable import generation_nfe

    torch.set_num_threads(1)
    try:
        cfg = compose_config(["experiment=compare_methods", *overrides])
    except (HydraException, OmegaConfBaseException) as err:  # an unknown model or scorer, before the sweep starts
        raise NoiseExpError(config_error_message(err)) from None
    model = instantiate(cfg.model)
    cond = model.encode_prompt("")
    return generation_nfe(model, cond), model.unet_calls_per_roundtrip, int(model.draw_noise([0]).numel())


def sweep_command(config: Config, costs: tuple[int, int, int], conf_dir: Path) -> list[str]:
    """run.py -m of the study's jobs; each method's compare_method yaml is written to `conf_dir` (Hydra's search
    path: conf/compare_method's own copies come first)."""
    from noise_exp.methods.registry import REGISTRY

    classes = compare_classes()
    if config.methods == []:
        raise NoiseExpError("methods=[] compares nothing: name the methods, or methods=null for every one")
    if config.methods:
        names = list(config.methods)
        unknown = [name for name in names if name not in {cls.name for cls in classes}]
        if unknown:
            raise NoiseExpError(f"methods: {', '.join(unknown)} has no at_budget (the study's methods: "
                                f"{', '.join(cls.name for cls in classes)})")
        classes = [REGISTRY[name] for name in names]
    budgets = ladder_budgets(config.ladder, *costs, config.verifier)
    return [sys.executable, str(ROOT / "run.py"), "-m", "experiment=compare_methods", f"model={config.model}",
            f"dataset={config.dataset}", f"dataset.limit={config.prompts}", f"evaluator=[{config.verifier},{config.judge}]",
            f"compare.verifier={config.verifier}", f"compare.held_out=[{config.judge}]",
            *study_overrides(budgets, conf_dir, classes), f"hydra.searchpath=[file://{conf_dir}]",
            f"hydra.sweep.dir={config.out}"]


def doc_block(figure: Path, markdown: str, command: str, seconds: float, costs: tuple[int, int, int]) -> str:
    """The measured block of the doc: the command, its minutes, G, R, d, the table and the plot."""
    generation, roundtrip, dim = costs
    return (f"Measured by `{command}` in {seconds / 60:.1f} min (G = {generation} NFEs per generation, "
            f"R = {roundtrip} per round trip, d = {dim}).\n\n{markdown}\n![quality vs NFEs]({figure.name})")


def run(config: Config, command: str) -> int:
    """The sweep of methods x rungs, then its table and plot (and the doc's measured block)."""
    integer_param("prompts", config.prompts, 1)
    writable_folder(config.out, "out")
    if config.doc is not None:
        writable_file(config.doc, "doc")
    if config.verifier == config.judge:
        raise NoiseExpError(f"verifier and judge are both {config.judge}: the judge must stay held out")
    from noise_exp.report.compare import write_compare

    config.out = config.out.resolve()  # the sweep runs from the repository root

    costs = model_costs([f"model={config.model}", f"evaluator=[{config.verifier},{config.judge}]"])
    with tempfile.TemporaryDirectory(prefix="compare_conf_") as conf_dir:
        sweep = sweep_command(config, costs, Path(conf_dir))
        print(" ".join(sweep), flush=True)
        start = time.perf_counter()
        done = subprocess.run(sweep, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        seconds = time.perf_counter() - start
    if done.returncode:
        raise NoiseExpError(f"the sweep failed (exit {done.returncode}); see its run.log files under {config.out}")
    result = write_compare(config.out)
    print(result.markdown + f"\nsweep: {seconds:.0f}s\ntable: {result.files['md']}\nplot: {result.files['png']}")
    if config.doc:
        figure = config.doc.with_suffix(".png")
        atomic_write_bytes(figure, result.files["png"].read_bytes())
        write_doc_block(config.doc, "compare", doc_block(figure, result.markdown, command, seconds, costs))
    return 0

