"""Train the small digits model (`make train-small`) into the folder `model=small_digits` loads.

    python scripts/train_small.py [--out DIR] [--seed 0] [--threads 2] [--force]

Training is deterministic from the seed for a given thread count; the folder also holds training.json
(configuration, losses, seconds).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import exit_on_user_error  # noqa: E402
from noise_exp.models.digits import (DigitsTrainingConfig, clear_for_training, save_trained,  # noqa: E402
                                     train_pipeline)


def configured_folder() -> Path:
    """`model.pretrained` of conf/model/small_digits.yaml (honours NOISE_EXP_MODEL_CACHE)."""
    from noise_exp.config import compose_config

    return Path(compose_config(["model=small_digits"]).model.pretrained)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: model.pretrained)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the timing budget assumes 2)")
    parser.add_argument("--vae-steps", type=int, default=DigitsTrainingConfig.vae_steps)
    parser.add_argument("--unet-steps", type=int, default=DigitsTrainingConfig.unet_steps)
    parser.add_argument("--force", action="store_true", help="retrain even if the folder exists")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or configured_folder()
    if not clear_for_training(out, args.force):
        return 0
    start = time.perf_counter()
    config = DigitsTrainingConfig(seed=args.seed, vae_steps=args.vae_steps, unet_steps=args.unet_steps)
    pipe, record = train_pipeline(config, report=lambda line: print(line, flush=True))
    save_trained(pipe, record, out, start, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
