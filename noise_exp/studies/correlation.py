"""Does s(eps) track quality within a prompt? A candidate bank per guidance, its picks and the correlation
(`make reproduce-correlation`; docs/candidate_bank.md).

    python -m noise_exp.studies correlation [model=small_digits] [dataset=digits] [reward=digit_classifier]
        [oracle=digit_realism] [guidance=[1,3]] [prompts=100] [seeds=100] [out=outputs/reproduce_correlation]
        [quick=true]

Knobs and their values: conf/study/correlation.yaml. Per guidance g, three steps into <out>:
1. `run.py model=<model> dataset=<dataset> dataset.limit=<prompts> method=select method.num_seeds=<seeds>
   method.seeds_per_prompt=true method.score_candidates=true "evaluator=[<reward>,<oracle>]" bank.path=<out>/bank`
   in this process (run folder select_g<g>): K scored candidates per prompt (fresh seeds per prompt) into one bank;
2. `python -m noise_exp.bank select` of the stable, unstable, random, best-by-reward and oracle picks (rules_g<g>);
3. `python -m noise_exp.bank correlate` of s(eps) with the reward and the oracle (correlation_g<g>).
A rerun reuses the bank: nothing is recomputed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from noise_exp.errors import NoiseExpError


@dataclass
class Config:
    """conf/study/correlation.yaml."""

    model: str
    dataset: str
    reward: str  # the cheap scorer: a pick by it, and correlated with s
    oracle: str  # the held-out scorer: the oracle pick, and correlated with s
    guidance: list[float]  # one bank scope, picks and correlation per guidance scale
    prompts: int  # the dataset's first prompts
    seeds: int  # K candidates per prompt
    batch_size: int  # candidates per forward pass
    out: Path
    threads: int


def select_overrides(config: Config, guidance: float) -> list[str]:
    """The selection run of one guidance scale: every candidate scored into the bank."""
    return [f"model={config.model}", f"dataset={config.dataset}", f"dataset.limit={config.prompts}", "method=select",
            f"method.num_seeds={config.seeds}", "method.seeds_per_prompt=true", "method.score_candidates=true",
            f"method.batch_size={config.batch_size}", f"model.guidance_scale={guidance:g}",
            f"evaluator=[{config.reward},{config.oracle}]", f"bank.path={config.out / 'bank'}"]


def run(config: Config, command: str) -> int:
    """Selection into the bank, the picks and the correlation, per guidance scale."""
    import torch

    from noise_exp.bank.__main__ import main as bank
    from noise_exp.config import compose_config
    from noise_exp.files import writable_folder
    from noise_exp.params import integer_param, real_param
    from noise_exp.runner import run_experiment

    for key in ("prompts", "seeds", "batch_size", "threads"):
        integer_param(key, getattr(config, key), 1)
    for guidance in config.guidance:
        real_param("guidance", guidance, 0.0)
    if config.reward == config.oracle:
        raise NoiseExpError(f"reward and oracle are both {config.oracle}: the oracle must be another scorer")
    writable_folder(config.out, "out")
    torch.set_num_threads(config.threads)
    out = config.out
    for guidance in config.guidance:
        run_dir = out / f"select_g{guidance:g}"
        print(f"== guidance {guidance:g} -> {run_dir}", flush=True)
        run_experiment(compose_config(select_overrides(config, guidance)), run_dir)
        steps = (["select", str(run_dir), "--by", "stability", "--by", "unstable", "--by", "random", "--by",
                  config.reward, "--by", f"oracle:{config.oracle}", "--out", str(out / f"rules_g{guidance:g}")],
                 ["correlate", str(run_dir), "--scores", f"{config.reward},{config.oracle}", "--out",
                  str(out / f"correlation_g{guidance:g}")])
        for argv in steps:
            code = bank(argv)
            if code:
                return code
    return 0
