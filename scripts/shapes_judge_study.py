"""How exact is the shapes judge? Accuracy on fresh clean renders and on renders perturbed like a model's output.

    python scripts/shapes_judge_study.py [--n 2000] [--sizes 32 64] [--levels 0 1 2] [--seed 1]   (make shapes-judge-study)

Level 0 is the clean drawing; level k is `MODEL_LIKE.scaled(k)` (noise_exp/data/shapes_render.py: objects shifted,
resized, turned and recoloured, then blurred and noised; level 1 is the documented "model-like" setting). Every
render satisfies its caption by construction, so the judge's accuracy is the fraction it calls correct. Prints one
markdown row per size and level, and the first failures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.data.shapes import TAGS  # noqa: E402
from noise_exp.data.shapes_render import MODEL_LIKE, sample_renderings  # noqa: E402
from noise_exp.evaluators.shapes import judge, summarize  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="renders per size and level (tags balanced)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--levels", type=float, nargs="+", default=[0, 1, 2],
                        help="perturbation strengths, multiples of MODEL_LIKE (0: clean)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=3, help="failures listed per row")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"| size | perturbation | n | correct | {' | '.join(TAGS)} | seconds |")
    print("|---:|---:|---:|---|" + "---:|" * len(TAGS) + "---:|")
    shown = []
    for size in args.sizes:
        for level in args.levels:
            row, failures = study(args.n, size, level, args.seed)
            print(row, flush=True)
            shown += [f"  {size} px, level {level:g}: {failure}" for failure in failures[:args.show]]
    if shown:
        print("first failures:\n" + "\n".join(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
