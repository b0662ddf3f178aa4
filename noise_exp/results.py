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
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image

from noise_exp.data.prompts import Prompt
from noise_exp.methods.method import MethodOutput

RESULT_COLUMNS = ["dataset", "prompt_id", "prompt", "variant", "seed", "stability", "image", "noise", "time_s", "unet_calls",
                  "norm_ratio"]
SELECTION_COLUMNS = ["prompt_id", "seed", "stability"]
TRACE_COLUMNS = ["prompt_id", "step", "stability", "lr"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and os.replace, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    prompt_id = record["prompt_id"]
    base = {"dataset": record["dataset"], "prompt_id": prompt_id, "prompt": record["prompt"]}
    return RecordRows(
        results=[{**base, **variant} for variant in record["variants"]],
        selection=[{"prompt_id": prompt_id, "seed": seed, "stability": s} for seed, s in record["selection_scores"]],
        trace=[{"prompt_id": prompt_id, "step": step, "stability": s, "lr": lr} for step, s, lr in record["trace"]])


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

    def is_done(self, prompt_id: int) -> bool:
        return self.record_path(prompt_id).is_file()

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            paths = self.records_dir.glob("*.json") if self.records_dir.is_dir() else []
            self._records = {r["prompt_id"]: r for r in (json.loads(p.read_text()) for p in paths)}
        return [self._records[k] for k in sorted(self._records)]

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
            if self.save_noise:
                noise_rel = f"noises/{prompt.id}_{variant.name}.pt"
                buffer = io.BytesIO()
                torch.save(variant.noise.detach().cpu().to(torch.float32).clone(), buffer)
                atomic_write_bytes(self.run_dir / noise_rel, buffer.getvalue())
            variants.append({"variant": variant.name, "seed": variant.seed, "stability": variant.stability,
                             "image": image_rel, "noise": noise_rel, "time_s": round(variant.time_s, 4),
                             "unet_calls": variant.unet_calls, "norm_ratio": variant.norm_ratio})
        record = {"prompt_id": prompt.id, "prompt": prompt.text, "dataset": prompt.dataset, "meta": prompt.meta,
                  "variants": variants, "selection_scores": output.selection_scores, "trace": output.trace}
        atomic_write_bytes(self.record_path(prompt.id), json.dumps(record).encode("utf-8"))
        self.records()  # load the earlier records once before adding this one
        self._records[prompt.id] = record
        self.write_tables()
        return record

    def write_tables(self) -> None:
        results, selection, trace = [], [], []
        for record in self.records():
            rows = record_rows(record)
            results += rows.results
            selection += rows.selection
            trace += rows.trace
        atomic_write_csv(self.run_dir / "results.csv", RESULT_COLUMNS, results)
        if selection:
            atomic_write_csv(self.run_dir / "selection_scores.csv", SELECTION_COLUMNS, selection)
        if trace:
            atomic_write_csv(self.run_dir / "optimization_trace.csv", TRACE_COLUMNS, trace)
