"""The exact judge's accuracy of a shapes model on dataset=shapes_bench, per tag (issue 12, item 4's quality bar).

    python -m noise_exp.studies shapes_accuracy [model=small_shapes] [dataset=shapes_bench] [seed_offset=0]
        [limit=300] [guidance=G] [steps=T] [threads=1] [out=accuracy.json] [grid=grid.png] [overrides=['key=value',...]]

Knobs and their values: conf/study/shapes_accuracy.yaml. One sample per prompt, seed = the prompt's id (0..299, all
distinct) plus `seed_offset`, at the config's T and guidance unless overridden. Sampler settings are chosen on
`dataset=shapes_val seed_offset=10000` (the same
grammar drawn with another seed, other noises) and reported on shapes_bench. Each image is judged by
`evaluator=shapes_geneval` against its caption. Prints the per-tag table
(n, correct and the sub-checks) and `overall` = GenEval's score, the mean over tags. Equivalent to
`python run.py model=small_shapes dataset=shapes_bench method=baseline method.num_seeds=300
"evaluator=[shapes_geneval]"` followed by `noise_exp.report.tags.run_tag_accuracy(run_dir)`, without the run folder.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes


@dataclass
class Config:
    """conf/study/shapes_accuracy.yaml."""

    model: str  # a model config (small_shapes, small_shapes_l)
    dataset: str  # a prompt set in the grammar (shapes_bench, shapes_val)
    seed_offset: int  # seed = prompt id + this
    limit: Optional[int]  # first N prompts (multiples of 6 balance); null: all
    guidance: Optional[float]  # guidance scale (null: the config's)
    steps: Optional[int]  # DDIM steps T (null: the config's)
    threads: int
    out: Optional[Path]  # write the summary as JSON here
    grid: Optional[Path]  # save the first 48 samples as one image here
    overrides: list[str]  # more Hydra overrides, e.g. [model.pretrained=DIR]


def sample(model, prompts: Sequence[str], seeds: Sequence[int], batch_size: int = 50) -> list:
    """One image per (prompt, seed), prompts batched together through the adapter's denoise and decode."""
    import torch

    from noise_exp.models.base import Conditioning

    images = []
    for first in range(0, len(prompts), batch_size):
        chunk = list(prompts[first:first + batch_size])
        conds = [model.encode_prompt(prompt) for prompt in chunk]
        stacked = Conditioning(" | ".join(chunk), {key: torch.cat([c.tensors[key] for c in conds])
                                                   for key in conds[0].tensors})
        latents = model.denoise(model.draw_noise(seeds[first:first + batch_size]), stacked)
        images += model.decode(latents)
    return images


def measure(model, prompts: Sequence[str], seeds: Sequence[int]):
    """(images, judgements, per-tag summaries) of one sample per prompt."""
    from noise_exp.data.shapes import parse_caption
    from noise_exp.evaluators.shapes import ShapesGenEval, summarize

    images = sample(model, prompts, seeds)
    judgements = ShapesGenEval().judge(images, list(prompts))
    return images, judgements, summarize([parse_caption(p).tag for p in prompts], judgements)


def format_table(summaries: dict) -> str:
    cell = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
    lines = ["| tag | n | correct | present | count | color | position |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s in summaries.values():
        lines.append(f"| {s.tag} | {s.n} | {cell(s.correct)} | {cell(s.present)} | {cell(s.count)} | "
                     f"{cell(s.color)} | {cell(s.position)} |")
    return "\n".join(lines)


def check_config(config: Config) -> None:
    """One line for the first bad knob (raises NoiseExpError)."""
    from noise_exp.files import writable_file
    from noise_exp.params import integer_param, real_param

    integer_param("seed_offset", config.seed_offset, 0)
    integer_param("threads", config.threads, 1)
    for key, value in (("limit", config.limit), ("steps", config.steps)):
        if value is not None:
            integer_param(key, value, 1)
    if config.guidance is not None:
        real_param("guidance", config.guidance, 0.0)
    for key, path in (("out", config.out), ("grid", config.grid)):
        if path is not None:
            writable_file(path, key)
    if config.grid is not None and config.grid.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise NoiseExpError(f"grid {config.grid}: name an image file (.png, .jpg, .webp)")


def composed(overrides: list[str]):
    """The composed config; a Hydra error (an unknown model or dataset, a bad override) as one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from noise_exp.config import compose_config
    from noise_exp.errors import config_error_message

    try:
        return compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise NoiseExpError(config_error_message(err)) from None


def run(config: Config, command: str) -> int:
    """Sample, judge and print the per-tag table (and write the JSON summary and the grid)."""
    from dataclasses import asdict

    check_config(config)  # every knob, before torch is imported or a model loaded
    import torch

    from noise_exp.evaluators.shapes import ShapesGenEval
    from noise_exp.runner import build

    torch.set_num_threads(config.threads)
    overrides = [f"model={config.model}", f"dataset={config.dataset}", "model.device=cpu", *config.overrides]
    overrides += [f"model.guidance_scale={config.guidance}"] * (config.guidance is not None)
    overrides += [f"model.num_steps={config.steps}"] * (config.steps is not None)
    overrides += [f"dataset.limit={config.limit}"] * (config.limit is not None)
    cfg = composed(overrides)
    prompts = build(cfg.dataset, "dataset").load()
    ShapesGenEval().check_prompts([p.text for p in prompts])  # the judge reads the grammar: refuse before sampling
    model = build(cfg.model, "model")
    start = time.perf_counter()
    images, _, summaries = measure(model, [p.text for p in prompts], [p.id + config.seed_offset for p in prompts])
    seconds = time.perf_counter() - start
    print(f"{config.model}: T = {cfg.model.num_steps}, guidance {cfg.model.guidance_scale}, spacing "
          f"{model.scheduler.config.timestep_spacing}, {config.dataset}, {len(prompts)} prompts, seeds +{config.seed_offset}, "
          f"{seconds:.0f}s on {config.threads} thread(s)")
    print(format_table(summaries))
    if config.grid:
        from noise_exp.imaging import horizontal_strip, stack_rows

        rows = [horizontal_strip(images[i:i + 12]) for i in range(0, min(48, len(images)), 12)]
        stack_rows(rows).save(config.grid)
    if config.out:
        atomic_write_bytes(config.out, json.dumps({"model": config.model, "num_steps": cfg.model.num_steps,
                                        "guidance_scale": cfg.model.guidance_scale,
                                        "timestep_spacing": model.scheduler.config.timestep_spacing,
                                        "dataset": config.dataset, "seed_offset": config.seed_offset, "seconds": round(seconds, 1),
                                        "threads": config.threads,
                                        "tags": {t: asdict(s) for t, s in summaries.items()}}, indent=1).encode() + b"\n")
    return 0

