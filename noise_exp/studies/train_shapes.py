"""Train the shapes world's two committed diffusion models stage by stage (weights/small-shapes[-l]).

    python -m noise_exp.studies train_shapes [stages=[...]]   (make train-shapes)

Knobs: conf/study/train_shapes.yaml, the stage table: one row is one `python -m noise_exp.training.shapes` call
(its options as keys; paths relative to the project folder; no `out`: the folder the model config loads).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from noise_exp.errors import NoiseExpError
from noise_exp.studies.common import project_path


@dataclass
class Config:
    """conf/study/train_shapes.yaml."""

    stages: list[Any]  # rows of noise_exp.training.shapes.Stage fields


def read_stages(rows: list[Any]) -> list["Stage"]:
    """The stage table's rows as `Stage`s, every row checked before any training starts."""
    from noise_exp.training.shapes import Stage

    known = {field.name for field in fields(Stage)}
    stages = []
    for number, row in enumerate(rows, 1):
        unknown = sorted(set(row) - known) if isinstance(row, dict) else None
        if unknown is None or unknown or "size" not in row:
            raise NoiseExpError(f"stage {number} of the table is not a row of {{size: ..., ...}} with keys among "
                                f"{sorted(known)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        paths = {key: project_path(Path(row[key])) for key in ("out", "continue_from") if row.get(key) is not None}
        stages.append(Stage(**{**row, **paths}))
    return stages


def run(config: Config, command: str) -> int:
    """Train each stage in order (a stage whose folder exists is skipped unless it says `force: true`)."""
    from noise_exp.training.shapes import train_stage

    for stage in read_stages(config.stages):
        print(f"== stage: size {stage.size}, out {stage.out or 'the model config folder'}", flush=True)
        train_stage(stage)
    return 0
