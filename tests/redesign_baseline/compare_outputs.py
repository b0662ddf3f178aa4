"""Compare issue 21's baseline outputs (tests/redesign_baseline/before) with a new capture, exactly.

    python tests/redesign_baseline/compare_outputs.py BEFORE AFTER     # identical / differs / missing, per file
    python tests/redesign_baseline/compare_outputs.py --collect CAPTURE DEST   # keep a capture's compared files

Every file under BEFORE is looked up at the same relative path under AFTER (AFTER may hold more: images, logs).
Both sides are normalised the same way first:
- `*.csv`: read with pandas (`keep_default_na=False`), timing and machine columns dropped (`TIMING`), rows sorted
  (key columns first), then `assert_frame_equal(check_exact=True)`: no tolerance, a mismatch is a finding.
- `*.json`: the same keys dropped at any depth, plus what names the machine, the time or the command line
  (`VOLATILE_KEYS`); a `_target_` that the project's `LEGACY_TARGETS` moved (the map old run folders load
  through) is read as its new name; then `==`.
- `*.txt`: line by line, after dropping "in X.Xs".
A capture folder's absolute path is written `<OUT>` everywhere. Exit 0 when every file is identical, 1 otherwise.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path

import pandas as pd

from noise_exp.config import upgrade_target

TIMING = ("time_s", "time_s_*", "seconds", "seconds*", "*_seconds", "peak_memory_mb", "written_at", "run", "device",
          "wall_s")
VOLATILE_KEYS = (*TIMING, "finished_utc", "recounted_utc", "load_average", "command", "args", "created")
KEY_COLUMNS = ("dataset", "prompt_id", "variant", "method", "budget", "metric", "a", "b", "step", "seed", "setting")
COMPARED = ("*.csv", "*.json", "*.txt")
SKIPPED = ("logs", "weights", "bank", ".hydra", "prompts", "images", "noises")  # folder names never compared
SKIPPED_FILES = ("run.json",)  # the run fingerprint: its `_target_`s are expected to move (C8 covers the config)


def dropped(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def compared_files(root: Path) -> list[Path]:
    """The files of a capture that are compared, relative to it."""
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file()
                  and any(fnmatch.fnmatchcase(path.name, p) for p in COMPARED) and path.name not in SKIPPED_FILES
                  and not set(path.relative_to(root).parts[:-1]) & set(SKIPPED))


def read_csv(path: Path, root: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame[[c for c in frame.columns if not dropped(str(c), TIMING)]]
    frame = frame.replace(re.escape(str(root.resolve())), "<OUT>", regex=True) if len(frame) else frame
    keys = [c for c in KEY_COLUMNS if c in frame.columns]
    order = frame.astype(str)[keys + sorted(c for c in frame.columns if c not in keys)]
    return frame.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)


def clean_json(value, root: str):
    if isinstance(value, dict):
        return {k: upgrade_target(v) if k == "_target_" and isinstance(v, str) else clean_json(v, root)
                for k, v in value.items() if not dropped(k, VOLATILE_KEYS)}
    if isinstance(value, list):
        return [clean_json(v, root) for v in value]
    return value.replace(root, "<OUT>") if isinstance(value, str) else value


def read_json(path: Path, root: Path):
    return clean_json(json.loads(path.read_text(encoding="utf-8")), str(root.resolve()))


def read_text(path: Path, root: Path) -> list[str]:
    text = path.read_text(encoding="utf-8").replace(str(root.resolve()), "<OUT>")
    return [re.sub(r" in [0-9.]+s\b", "", line) for line in text.splitlines()]


def first_json_difference(a, b, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'after' if key in b else 'before'}"
            if a[key] != b[key]:
                return first_json_difference(a[key], b[key], f"{where}/{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_json_difference(x, y, f"{where}[{index}]")
    return f"{where or '/'}: {a!r:.80} != {b!r:.80}"


def first_csv_difference(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    if list(a.columns) != list(b.columns):
        return f"columns {list(a.columns)} != {list(b.columns)}"
    if len(a) != len(b):
        return f"{len(a)} rows != {len(b)} rows"
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)
    except AssertionError:
        for column in a.columns:
            for row in range(len(a)):
                x, y = a[column].tolist()[row], b[column].tolist()[row]
                if x != y and str(x) != str(y):
                    keys = {c: a[c].tolist()[row] for c in KEY_COLUMNS if c in a.columns}
                    return f"row {row} {keys} column {column}: {x!r} != {y!r}"
        return "frames differ (dtype)"
    return None


def compare_file(relative: Path, before: Path, after: Path) -> str | None:
    """None when identical, else the first difference."""
    a, b = before / relative, after / relative
    if relative.suffix == ".csv":
        x, y = read_csv(a, before), read_csv(b, after)
        return first_csv_difference(x[sorted(x.columns)], y[sorted(y.columns)])
    if relative.suffix == ".json":
        x, y = read_json(a, before), read_json(b, after)
        return None if x == y else first_json_difference(x, y)
    x, y = read_text(a, before), read_text(b, after)
    if x == y:
        return None
    line = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
    return f"line {line + 1}: {(x + [''])[line]!r:.100} != {(y + [''])[line]!r:.100}"


def compare(before: Path, after: Path) -> int:
    counts = {"identical": 0, "differs": 0, "missing": 0}
    for relative in compared_files(before):
        if not (after / relative).is_file():
            counts["missing"] += 1
            print(f"missing    {relative}")
            continue
        difference = compare_file(relative, before, after)
        counts["differs" if difference else "identical"] += 1
        print(f"{'differs  ' if difference else 'identical'}  {relative}" + (f": {difference}" if difference else ""))
    extra = sorted(set(compared_files(after)) - set(compared_files(before)))
    for relative in extra:
        print(f"new        {relative} (not in BEFORE; not compared)")
    print(f"{counts['identical']} identical, {counts['differs']} differ, {counts['missing']} missing, {len(extra)} new")
    return 0 if counts["differs"] == counts["missing"] == 0 else 1


def collect(capture: Path, dest: Path) -> int:
    """Copy a capture's compared files to `dest`, normalised (timing columns and keys dropped, paths as <OUT>)."""
    for relative in compared_files(capture):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source = capture / relative
        if relative.suffix == ".csv":
            read_csv(source, capture).to_csv(target, index=False)
        elif relative.suffix == ".json":
            target.write_text(json.dumps(read_json(source, capture), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        else:
            target.write_text("\n".join(read_text(source, capture)) + "\n", encoding="utf-8")
        print(target)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true", help="copy FIRST's compared files, normalised, to SECOND")
    parser.add_argument("first", type=Path, help="BEFORE (or, with --collect, the capture)")
    parser.add_argument("second", type=Path, help="AFTER (or, with --collect, the destination)")
    args = parser.parse_args(argv)
    if not args.first.is_dir():
        print(f"error: {args.first} is not a folder", file=sys.stderr)
        return 2
    return collect(args.first, args.second) if args.collect else compare(args.first, args.second)


if __name__ == "__main__":
    sys.exit(main())
