"""The run folder: per-prompt records written atomically, and the CSV tables rebuilt from them.

Each finished prompt writes its images and noises first, then `prompts/<id>.json` last (tmp file +
os.replace), so a prompt counts as done only when everything it produced is on disk. The CSV tables
are regenerated from those records, also atomically: killing a run at any moment leaves no
half-written file, and re-running the same config skips the finished prompts.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image

from noise_exp.data.prompts import Prompt
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes
from noise_exp.methods.method import MethodOutput
from noise_exp.rundir.results import RESULTS_FILE

RESULT_COLUMNS = ["dataset", "prompt_id", "prompt", "variant", "seed", "stability", "image", "noise", "time_s", "unet_calls",
                  "norm_ratio", "peak_memory_mb"]
SELECTION_COLUMNS = ["prompt_id", "seed", "stability"]
TRACE_COLUMNS = ["prompt_id", "step", "stability", "lr", "reward"]  # reward: reward-based optimization only


def atomic_write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


@dataclass
class RecordRows:
    """One prompt's record as rows of results.csv, selection_scores.csv and optimization_trace.csv."""

    results: list[dict[str, Any]]
    selection: list[dict[str, Any]]
    trace: list[dict[str, Any]]


def record_rows(record: dict[str, Any]) -> RecordRows:
    """Evaluator scores, kept per variant under `scores`, become one column each."""
    prompt_id = record["prompt_id"]
    base = {"dataset": record["dataset"], "prompt_id": prompt_id, "prompt": record["prompt"]}
    return RecordRows(
        results=[{**base, **{k: v for k, v in variant.items() if k != "scores"}, **(variant.get("scores") or {})}
                 for variant in record["variants"]],
        selection=[{"prompt_id": prompt_id, "seed": seed, "stability": s} for seed, s in record["selection_scores"]],
        trace=[{"prompt_id": prompt_id, "step": step, "stability": s, "lr": lr, "reward": reward[0] if reward else ""}
               for step, s, lr, *reward in record["trace"]])


@dataclass
class RunStore:
    """Reads and writes one run folder (layout in docs/CONVENTIONS.md)."""

    run_dir: Path
    save_noise: bool = True

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.records_dir = self.run_dir / "prompts"
        self._records: dict[int, dict[str, Any]] | None = None  # read from disk once, then kept up to date

    def record_path(self, prompt_id: int) -> Path:
        return self.records_dir / f"{prompt_id}.json"

    def is_done(self, prompt: Prompt) -> bool:
        """True when the prompt's record is on disk; a record of another text under the same id is refused."""
        self.records()
        record = self._records.get(prompt.id)
        if record is None:
            return False
        if record["prompt"] != prompt.text:
            raise NoiseExpError(f"prompt id {prompt.id} is {record['prompt']!r} in {self.record_path(prompt.id)} but "
                                f"{prompt.text!r} in the dataset: the prompt file changed; write to a new folder "
                                f"(hydra.run.dir=...)")
        return True

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            paths = sorted(self.records_dir.glob("*.json")) if self.records_dir.is_dir() else []
            loaded = (self._read_record(path) for path in paths)
            self._records = {r["prompt_id"]: r for r in loaded if r is not None}
        return [self._records[k] for k in sorted(self._records)]

    def _read_record(self, path: Path) -> dict[str, Any] | None:
        """A per-prompt record, or None after moving a corrupt one aside (its prompt is then recomputed)."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("variants"), list) \
                    or f"{record['prompt_id']}.json" != path.name or not isinstance(record["prompt"], str):
                raise ValueError("not a prompt record")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            aside = path.with_name(f"{path.name}.corrupt")
            os.replace(path, aside)
            message = f"warning: {path} is corrupt ({type(err).__name__}); moved to {aside.name}, its prompt is recomputed"
            print(message, file=sys.stderr, flush=True)
            return None
        return record

    def score_columns(self) -> list[str]:
        """Evaluator names present in any record, in first-seen order."""
        names: dict[str, None] = {}
        for record in self.records():
            for variant in record["variants"]:
                names.update(dict.fromkeys(variant.get("scores") or {}))
        return list(names)

    def write_record(self, record: dict[str, Any]) -> None:
        """Replace one prompt's record on disk and in memory (e.g. after scoring); tables are not rebuilt."""
        atomic_write_bytes(self.record_path(record["prompt_id"]), json.dumps(record).encode("utf-8"))
        self.records()
        self._records[record["prompt_id"]] = record

    def write_prompt(self, prompt: Prompt, output: MethodOutput, images: dict[str, Image.Image]) -> dict[str, Any]:
        """Save a finished prompt's images, noises and record, then refresh the tables."""
        variants = []
        for variant in output.variants:
            image_rel = noise_rel = ""
            if variant.name in images:
                image_rel = f"images/{prompt.id}_{variant.name}.png"
                buffer = io.BytesIO()
                images[variant.name].save(buffer, format="PNG")
                atomic_write_bytes(self.run_dir / image_rel, buffer.getvalue())
            if self.save_noise and variant.noise is not None:
                noise_rel = f"noises/{prompt.id}_{variant.name}.pt"
                buffer = io.BytesIO()
                torch.save(variant.noise.detach().cpu().to(torch.float32).clone(), buffer)
                atomic_write_bytes(self.run_dir / noise_rel, buffer.getvalue())
            peak = variant.peak_memory_mb
            variants.append({"variant": variant.name, "seed": variant.seed, "stability": variant.stability,
                             "image": image_rel, "noise": noise_rel, "time_s": round(variant.time_s, 4),
                             "unet_calls": variant.unet_calls, "norm_ratio": variant.norm_ratio,
                             "peak_memory_mb": None if math.isnan(peak) else round(peak, 1),
                             **({"scores": dict(variant.scores)} if variant.scores else {})})
        record = {"prompt_id": prompt.id, "prompt": prompt.text, "dataset": prompt.dataset, "meta": prompt.meta,
                  "variants": variants, "selection_scores": output.selection_scores, "trace": output.trace}
        self.write_record(record)
        self.write_tables()
        return record

    def write_tables(self) -> None:
        results, selection, trace = [], [], []
        for record in self.records():
            rows = record_rows(record)
            results += rows.results
            selection += rows.selection
            trace += rows.trace
        atomic_write_csv(self.run_dir / RESULTS_FILE, RESULT_COLUMNS + self.score_columns(), results)
        if selection:
            atomic_write_csv(self.run_dir / "selection_scores.csv", SELECTION_COLUMNS, selection)
        if trace:
            atomic_write_csv(self.run_dir / "optimization_trace.csv", TRACE_COLUMNS, trace)
