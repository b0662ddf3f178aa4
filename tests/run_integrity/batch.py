"""Runs several command-line cases of the fault matrix in one Python process, so that cheap argument checks
share one start-up (Python, torch, pandas imports) instead of paying it per row.

`python -m tests.run_integrity.batch <results.json>` reads a JSON list of `[entry, args]` on stdin (entry: a
module such as `noise_exp.bank`, or a `scripts/*.py` path) and runs each as its `__main__`, the way
`python -m entry args` or `python scripts/x.py args` would: sys.argv set, stdout and stderr captured, the exit code
taken from SystemExit, an uncaught exception printed as its traceback with exit code 1. It writes one JSON list of
`{"returncode", "stdout", "stderr", "seconds"}` to the file named by its one argument (not to stdout, which the
cases may write to).
"""
from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_case(entry: str, args: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    saved_argv = sys.argv
    sys.argv = [entry, *args]
    start = time.perf_counter()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if entry.endswith(".py"):
                    runpy.run_path(str(ROOT / entry), run_name="__main__")
                else:
                    runpy.run_module(entry, run_name="__main__", alter_sys=True)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except BaseException:  # a bug: what `python -m` would print, and its exit code
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "seconds": time.perf_counter() - start}


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
    cases = json.load(sys.stdin)
    results = [run_case(entry, args) for entry, args in cases]
    Path(sys.argv[1]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
