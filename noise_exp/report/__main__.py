"""`python -m noise_exp.report <run_dir>... [--out DIR]`: the report of one run or a merged sweep."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from noise_exp.errors import exit_on_user_error
from noise_exp.report.report import write_report


@exit_on_user_error
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noise_exp.report", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders (results.csv inside); several = a sweep")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <first run>/report)")
    parser.add_argument("--grid-rows", type=int, default=8, help="prompts per image grid")
    args = parser.parse_args(argv)
    result = write_report(args.run_dirs, args.out or args.run_dirs[0] / "report", max_grid_rows=args.grid_rows)
    print((result.out_dir / "means.md").read_text())
    print(f"report written to {result.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
