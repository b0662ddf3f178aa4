"""Train a small shapes-world diffusion model (`make train-shapes`) into the folder `model=small_shapes[_l]` loads.

    python scripts/train_shapes.py --size 32|64 [--out DIR] [--seed 0] [--threads 1] [--steps N] [--minutes M] [--force]
    python scripts/train_shapes.py --size 32|64 --continue-from DIR --out DIR2 --seed 1 --lr 5e-4 --steps N [--batch-size B] [--stop-after N]

--size 32 is `model=small_shapes` (4x8x8 latents), --size 64 is `model=small_shapes_l` (4x16x16 latents).
Training is deterministic from the seed for a given thread count; --minutes caps the UNet phase's wall clock
(a run stopped by it is not reproducible, and its training.json says so: `stopped_early`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import NoiseExpError, exit_on_user_error  # noqa: E402
from noise_exp.models.digits import clear_for_training, save_trained  # noqa: E402
from noise_exp.models.shapes import SIZES, continue_training, preset, train_pipeline  # noqa: E402

MODEL_OF_SIZE = {32: "small_shapes", 64: "small_shapes_l"}


def configured_folder(size: int) -> Path:
    """`model.pretrained` of conf/model/small_shapes[_l].yaml (honours NOISE_EXP_MODEL_CACHE)."""
    from noise_exp.config import compose_config

    return Path(compose_config([f"model={MODEL_OF_SIZE[size]}"]).model.pretrained)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, choices=SIZES, required=True, help="image side in pixels")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: model.pretrained)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    parser.add_argument("--steps", type=int, default=None, help="UNet steps (default: the preset's)")
    parser.add_argument("--vae-steps", type=int, default=None, help="VAE steps (default: the preset's)")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after N UNet steps of the --steps schedule (reproduces a run a time cap stopped)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock cap on the UNet phase")
    parser.add_argument("--lr", type=float, default=None, help="UNet + text-encoder peak learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="UNet batch size (default: the preset's)")
    parser.add_argument("--continue-from", type=Path, default=None,
                        help="a trained folder: more UNet + text-encoder steps from its weights (VAE kept)")
    parser.add_argument("--force", action="store_true", help="retrain even if the folder exists")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or configured_folder(args.size)
    if args.continue_from and args.continue_from.resolve() == out.resolve():
        raise NoiseExpError(f"--continue-from {args.continue_from} is the output folder too: pass --out elsewhere, "
                            f"then move it into place")
    if not clear_for_training(out, args.force):
        return 0
    start = time.perf_counter()
    config = preset(args.size, seed=args.seed, unet_steps=args.steps, vae_steps=args.vae_steps, unet_lr=args.lr,
                    batch_size=args.batch_size, stop_after=args.stop_after,
                    max_seconds=None if args.minutes is None else 60 * args.minutes)
    report = lambda line: print(line, flush=True)  # noqa: E731
    if args.continue_from:
        pipe, record = continue_training(args.continue_from, config, report)
    else:
        pipe, record = train_pipeline(config, report)
    save_trained(pipe, record, out, start, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
