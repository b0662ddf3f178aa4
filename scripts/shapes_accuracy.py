"""The exact judge's accuracy of a shapes model on dataset=shapes_bench, per tag (issue 12, item 4's quality bar).

    python scripts/shapes_accuracy.py [--model small_shapes] [--dataset shapes_bench] [--seed-offset 0] [--limit 300]
                                      [--guidance G] [--steps T] [--threads 1] [--out accuracy.json] [--grid grid.png]
                                      [hydra overrides...]

One sample per prompt, seed = the prompt's id (0..299, all distinct) plus --seed-offset, at the config's T and
guidance unless overridden. Sampler settings are chosen on `--dataset shapes_val --seed-offset 10000` (the same
grammar drawn with another seed, other noises) and reported on shapes_bench. Each image is judged by
`evaluator=shapes_geneval` against its caption. Prints the per-tag table
(n, correct and the sub-checks) and `overall` = GenEval's score, the mean over tags. Equivalent to
`python run.py model=small_shapes dataset=shapes_bench method=baseline method.num_seeds=300
"evaluator=[shapes_geneval]"` followed by `noise_exp.report.tags.run_tag_accuracy(run_dir)`, without the run folder.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import NoiseExpError, exit_on_user_error  # noqa: E402
from noise_exp.files import atomic_write_bytes  # noqa: E402


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


def check_args(args) -> None:
    """One line for the first bad argument (raises NoiseExpError)."""
    from noise_exp.files import writable_file
    from noise_exp.params import integer_param, real_param

    integer_param("--seed-offset", args.seed_offset, 0)
    integer_param("--threads", args.threads, 1)
    for flag, value in (("--limit", args.limit), ("--steps", args.steps)):
        if value is not None:
            integer_param(flag, value, 1)
    if args.guidance is not None:
        real_param("--guidance", args.guidance, 0.0)
    for flag, path in (("--out", args.out), ("--grid", args.grid)):
        if path is not None:
            writable_file(path, flag)
    if args.grid is not None and args.grid.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise NoiseExpError(f"--grid {args.grid}: name an image file (.png, .jpg, .webp)")


def composed(overrides: list[str]):
    """The composed config; a Hydra error (an unknown --model or --dataset, a bad override) as one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from noise_exp.config import compose_config
    from noise_exp.errors import config_error_message

    try:
        return compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise NoiseExpError(config_error_message(err)) from None


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from dataclasses import asdict

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_shapes", help="a model config (small_shapes, small_shapes_l)")
    parser.add_argument("--dataset", default="shapes_bench", help="a prompt set in the grammar (shapes_bench, shapes_val)")
    parser.add_argument("--seed-offset", type=int, default=0, help="seed = prompt id + this")
    parser.add_argument("--limit", type=int, default=None, help="first N benchmark prompts (multiples of 6 balance)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps T (default: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON here")
    parser.add_argument("--grid", type=Path, default=None, help="save the first 48 samples as one image here")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, e.g. model.pretrained=DIR")
    args = parser.parse_args(argv)
    check_args(args)  # every argument, before torch is imported or a model loaded
    import torch

    from noise_exp.evaluators.shapes import ShapesGenEval
    from noise_exp.runner import build

    torch.set_num_threads(args.threads)
    overrides = [f"model={args.model}", f"dataset={args.dataset}", "model.device=cpu", *args.overrides]
    overrides += [f"model.guidance_scale={args.guidance}"] * (args.guidance is not None)
    overrides += [f"model.num_steps={args.steps}"] * (args.steps is not None)
    overrides += [f"dataset.limit={args.limit}"] * (args.limit is not None)
    cfg = composed(overrides)
    prompts = build(cfg.dataset, "dataset").load()
    ShapesGenEval().check_prompts([p.text for p in prompts])  # the judge reads the grammar: refuse before sampling
    model = build(cfg.model, "model")
    start = time.perf_counter()
    images, _, summaries = measure(model, [p.text for p in prompts], [p.id + args.seed_offset for p in prompts])
    seconds = time.perf_counter() - start
    print(f"{args.model}: T = {cfg.model.num_steps}, guidance {cfg.model.guidance_scale}, spacing "
          f"{model.scheduler.config.timestep_spacing}, {args.dataset}, {len(prompts)} prompts, seeds +{args.seed_offset}, "
          f"{seconds:.0f}s on {args.threads} thread(s)")
    print(format_table(summaries))
    if args.grid:
        from noise_exp.imaging import horizontal_strip, stack_rows

        rows = [horizontal_strip(images[i:i + 12]) for i in range(0, min(48, len(images)), 12)]
        stack_rows(rows).save(args.grid)
    if args.out:
        atomic_write_bytes(args.out, json.dumps({"model": args.model, "num_steps": cfg.model.num_steps,
                                        "guidance_scale": cfg.model.guidance_scale,
                                        "timestep_spacing": model.scheduler.config.timestep_spacing,
                                        "dataset": args.dataset, "seed_offset": args.seed_offset, "seconds": round(seconds, 1),
                                        "threads": args.threads,
                                        "tags": {t: asdict(s) for t, s in summaries.items()}}, indent=1).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
