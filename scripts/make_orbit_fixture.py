"""Write a small synthetic orbit dataset (coloured spheres and boxes on white) for offline runs and demos.

    python scripts/make_orbit_fixture.py --out datasets/orbits_fixture --objects 3 --frames 84 --size 64
    python run.py model=tiny_sv3d dataset=omniobject3d dataset.path=datasets/orbits_fixture method=optimize
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.data.orbit_fixture import make_orbit_fixture  # noqa: E402
from noise_exp.errors import exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write <object>/<frame>.png into")
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--frames", type=int, default=84, help="renders per full turn")
    parser.add_argument("--size", type=int, default=64, help="pixels (square)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = make_orbit_fixture(args.out, args.objects, args.frames, args.size, args.seed)
    print(f"wrote {args.objects} orbits of {args.frames} frames to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
