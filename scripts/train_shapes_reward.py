"""Train the shapes world's learned reward (`make train-shapes-reward`) into weights/shapes-reward/.

    python scripts/train_shapes_reward.py [--out DIR] [--seed 0] [--steps N] [--threads 1] [--force]

Deterministic from the seed for a given thread count. The folder gets model.safetensors, config.json and
training.json (configuration, losses, seconds, and the held-out ranking accuracy and agreement with the judge on
fresh clean and model-like renders).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.evaluators.shapes_reward import WEIGHTS, RewardTrainingConfig, save_reward, train_reward  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--seed", type=int, default=RewardTrainingConfig.seed)
    parser.add_argument("--steps", type=int, default=RewardTrainingConfig.steps)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--force", action="store_true", help="retrain even if the folder holds weights")
    args = parser.parse_args(argv)
    if (args.out / "model.safetensors").exists():
        if not args.force:
            print(f"{args.out} already holds weights; --force retrains them")
            return 0
        shutil.rmtree(args.out)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    net, record = train_reward(RewardTrainingConfig(seed=args.seed, steps=args.steps),
                               report=lambda line: print(line, flush=True))
    save_reward(net, record, args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(json.dumps(record["heldout"], indent=1))
    print(f"trained in {record['seconds']:.0f}s ({time.perf_counter() - start:.0f}s with evaluation) on "
          f"{args.threads} thread(s) -> {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
