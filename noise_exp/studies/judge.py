"""How exact is the shapes judge? Accuracy on fresh clean renders and on renders perturbed like a model's output.

    python -m noise_exp.studies judge [n=2000] [sizes=[32,64]] [levels=[0,1,2]] [seed=1] [show=3]   (make shapes-judge-study)

Knobs and their values: conf/study/judge.yaml.

Level 0 is the clean drawing; level k is `MODEL_LIKE.scaled(k)` (noise_exp/data/shapes_render.py: objects shifted,
resized, turned and recoloured, then blurred and noised; level 1 is the documented "model-like" setting). Every
render satisfies its caption by construction, so the judge's accuracy is the fraction it calls correct. Prints one
markdown row per size and level, and the first failures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from noise_exp.data.shapes import TAGS
from noise_exp.data.shapes_render import MODEL_LIKE, sample_renderings
from noise_exp.evaluators.shapes import judge, summarize


@dataclass
class Config:
    """conf/study/judge.yaml."""

    n: int  # renders per size and level (tags balanced)
    sizes: list[int]  # image sizes in pixels
    levels: list[float]  # perturbation strengths, multiples of MODEL_LIKE (0: clean)
    seed: int
    show: int  # failures listed per row


def study(n: int, size: int, level: float, seed: int) -> tuple[str, list[str]]:
    """One markdown row (size, level, n, overall accuracy, per tag, seconds) and the failures' descriptions."""
    start = time.perf_counter()
    renderings = sample_renderings(n, seed, size, MODEL_LIKE.scaled(level) if level else None)
    judgements = [judge(r.image, r.target) for r in renderings]
    summary = summarize([r.target.tag for r in renderings], judgements)
    failures = [f"{r.target.caption!r}: {'; '.join(j.reasons)}" for r, j in zip(renderings, judgements)
                if not j.correct]
    correct = sum(j.correct for j in judgements)
    per_tag = " | ".join(f"{summary[tag].correct:.3f}" for tag in TAGS)
    row = (f"| {size} | {level:g} | {n} | {correct}/{n} = {correct / n:.4f} | {per_tag} "
           f"| {time.perf_counter() - start:.0f} |")
    return row, failures


def run(config: Config, command: str) -> int:
    """One markdown row per size and level, then the first failures."""
    from noise_exp.params import integer_param, real_param

    integer_param("n", config.n, 1)
    integer_param("show", config.show, 0)
    for size in config.sizes:
        integer_param("sizes", size, 8)
    for level in config.levels:
        real_param("levels", level, 0.0)
    torch.set_num_threads(1)
    print(f"| size | perturbation | n | correct | {' | '.join(TAGS)} | seconds |")
    print("|---:|---:|---:|---|" + "---:|" * len(TAGS) + "---:|")
    shown = []
    for size in config.sizes:
        for level in config.levels:
            row, failures = study(config.n, size, level, config.seed)
            print(row, flush=True)
            shown += [f"  {size} px, level {level:g}: {failure}" for failure in failures[:config.show]]
    if shown:
        print("first failures:\n" + "\n".join(shown))
    return 0

