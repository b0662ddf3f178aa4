"""Write the fixed shapes benchmark `datasets/shapes_bench.jsonl` (`dataset=shapes_bench`).

    python scripts/make_shapes_bench.py [--per-tag 50] [--seed 0] [--out datasets/shapes_bench.jsonl]

One JSON object per line, GenEval's metadata layout: `tag`, `include` (the structured target: `class`, `count`,
optional `color`, and for position prompts `position: [relation, 0]` pointing at the reference object listed
first) and `prompt`. Tags take turns (row i has tag i mod 6), so any `dataset.limit` that is a multiple of 6 is
balanced. The committed file was written with the defaults.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.data.shapes import benchmark  # noqa: E402


def bench_lines(per_tag: int, seed: int) -> list[str]:
    return [json.dumps({"tag": target.tag, "include": target.to_geneval(), "prompt": target.caption})
            for target in benchmark(per_tag, seed)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tag", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "datasets" / "shapes_bench.jsonl")
    args = parser.parse_args(argv)
    lines = bench_lines(args.per_tag, args.seed)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} prompts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
