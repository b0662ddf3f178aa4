"""C8 of the issue-21 baseline: every config group option composed and resolved, dumped to one JSON file.

    python tests/redesign_baseline/dump_configs.py OUT.json

Each entry is `conf/` composed with one option (the others at their defaults), resolved, minus `hydra`; the project
root is written as `<ROOT>` so that two checkouts compare. A composition that fails is recorded as its error text.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from noise_exp.config import CONF_DIR, PROJECT_ROOT, compose_config

GROUPS = ("model", "method", "dataset", "evaluator", "experiment")


def options(group: str) -> list[str]:
    """The options of a config group, by file name."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def override_lists() -> dict[str, list[str]]:
    """Every composition the baseline records, by a readable key."""
    lists = {"default": []}
    for group in GROUPS:
        for name in options(group):
            lists[f"{group}={name}"] = [f"{group}=[{name}]" if group == "evaluator" else f"{group}={name}"]
    for name in options("compare_method"):
        lists[f"experiment=compare_methods +compare_method={name}"] = ["experiment=compare_methods",
                                                                      f"+compare_method={name}"]
    return lists


def resolved(overrides: list[str]) -> object:
    try:
        cfg = compose_config(overrides)
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # noqa: BLE001 - a failing composition is part of the baseline
        return {"error": f"{type(error).__name__}: {error}"}
    container.pop("hydra", None)
    return container


def main(out: Path) -> int:
    dumped = {key: resolved(overrides) for key, overrides in override_lists().items()}
    text = json.dumps(dumped, indent=1, sort_keys=True, default=str).replace(str(PROJECT_ROOT), "<ROOT>")
    out.write_text(text + "\n", encoding="utf-8")
    print(f"{len(dumped)} configs -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
