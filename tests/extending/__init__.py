"""The walk-throughs of docs/extending.md: each adds a method, a model family or an evaluator as one module plus one
yaml in this folder, found through `hydra.searchpath`, and checks that no file of the project had to change."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SEARCHPATH = f"hydra.searchpath=[file://{HERE / 'conf'}]"  # the doc types it relative to the repository root


def named_in_project(*words: str) -> list[Path]:
    """The project's .py and .yaml files (outside tests/) that name any of `words`: none, for a walk-through."""
    return [path for folder in ("noise_exp", "conf") for path in (REPO / folder).rglob("*")
            if path.suffix in (".py", ".yaml") and any(word in path.read_text() for word in words)]
