"""Convert Stability's SV3D checkpoint (sv3d_u.safetensors, sgm layout) to the diffusers-style folder noise-exp loads.

    python scripts/convert_sv3d.py --checkpoint sv3d_u.safetensors --out .cache/models/sv3d_u
    python scripts/convert_sv3d.py --checkpoint sv3d_u.safetensors --list-prefixes

See docs/sv3d.md. `--configs` (JSON with optional "unet", "vae", "image_encoder" objects) overrides the
SV3D-U architecture, e.g. for the tiny test checkpoint.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import exit_on_user_error  # noqa: E402
from noise_exp.models import sv3d_convert  # noqa: E402


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="sv3d_u.safetensors (or .ckpt)")
    parser.add_argument("--out", type=Path, help="folder to write unet/ vae/ image_encoder/ scheduler/ into")
    parser.add_argument("--dtype", default="float16", help="weights dtype on disk: float16 (default) or float32")
    parser.add_argument("--configs", type=Path, help="JSON overrides of the component configs")
    parser.add_argument("--list-prefixes", action="store_true", help="only count the keys under each expected prefix")
    args = parser.parse_args(argv)
    if args.list_prefixes:
        for prefix, count in sv3d_convert.prefix_counts(sv3d_convert.read_checkpoint(args.checkpoint)).items():
            print(f"{count:6d}  {prefix}")
        return 0
    if args.out is None:
        parser.error("--out is required unless --list-prefixes is given")
    configs = json.loads(args.configs.read_text()) if args.configs else None
    out = sv3d_convert.convert_file(args.checkpoint, args.out, configs, args.dtype)
    print(f"wrote {out} (load it with model=sv3d_u model.pretrained={out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
