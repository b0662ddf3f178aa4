"""`python -m noise_exp.report <run_dir>... [--out DIR] [--pool]`: the report of one run or of a sweep's runs (one
table row per distinct setting of the swept result keys; `--pool` pools all runs into one row per variant)."""
from __future__ import annotations

import sys
from pathlib import Path

from noise_exp.cli import ArgumentParser
from noise_exp.errors import exit_on_user_error
from noise_exp.files import writable_folder
from noise_exp.params import integer_param
from noise_exp.report.report import write_report
from noise_exp.report.sweep import add_tie_tolerance_option


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m noise_exp.report", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders (results.csv inside); several = a sweep")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <first run>/report)")
    parser.add_argument("--grid-rows", type=int, default=8, help="prompts per image grid")
    parser.add_argument("--grid-settings", type=int, default=4, help="settings with image grids (the first N)")
    parser.add_argument("--pool", action="store_true",
                        help="pool all runs into one row per dataset and variant, whatever their settings")
    add_tie_tolerance_option(parser)
    args = parser.parse_args(argv)
    integer_param("--grid-rows", args.grid_rows, 1)
    integer_param("--grid-settings", args.grid_settings, 0)
    if args.out is not None:
        writable_folder(args.out, "--out")
    result = write_report(args.run_dirs, args.out or args.run_dirs[0] / "report", max_grid_rows=args.grid_rows,
                          pool=args.pool, max_grid_settings=args.grid_settings,
                          tie_tolerance=dict(args.tie_tolerance))
    print((result.out_dir / "means.md").read_text())
    print(f"report written to {result.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
