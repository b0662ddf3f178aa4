"""Prompt sets read from .txt, .csv or .jsonl files, with id filters, offset/limit and sharding."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from noise_exp.errors import NoiseExpError


@dataclass(frozen=True)
class Prompt:
    id: int
    text: str
    dataset: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PromptSet:
    """A prompt file and how to read it. `load()` returns the prompts this job should run.

    Ids come from `id_field` when given, else the row index (0-based, before any filtering), so an id
    always points at the same prompt of the file whatever `offset`, `limit` or shard is chosen.
    """

    name: str
    path: str | None = None
    text_field: str = "prompt"
    id_field: str | None = None
    meta_fields: Sequence[str] = ()
    max_id: int | None = None  # keep ids <= max_id (Pick-a-Pic "first 100": ids 0..100)
    drop_empty: bool = False
    offset: int = 0
    limit: int | None = None
    num_shards: int = 1
    shard_index: int = 0

    def load(self) -> list[Prompt]:
        if not self.path:
            raise NoiseExpError(f"dataset {self.name!r} has no file: set dataset.path=/path/to/prompts.txt|csv|jsonl "
                                f"or prompt='...'")
        path = Path(self.path).expanduser()
        if path.is_dir():
            raise NoiseExpError(f"dataset.path={path} is a directory; give a prompt file (.txt, .csv, .tsv or .jsonl)")
        if not path.is_file():
            raise NoiseExpError(f"prompt file not found: {path} (set dataset.path)")
        rows = self._read(path)
        prompts = [self._prompt(i, row, path) for i, row in enumerate(rows)]
        if self.max_id is not None:
            prompts = [p for p in prompts if p.id <= self.max_id]
        if self.drop_empty:
            prompts = [p for p in prompts if p.text.strip()]
        elif any(not p.text.strip() for p in prompts):
            empty = [p.id for p in prompts if not p.text.strip()]
            raise NoiseExpError(f"{path}: empty prompt(s) with id {empty[:5]}; remove them or set dataset.drop_empty=true")
        if self.offset < 0 or (self.limit is not None and self.limit < 0):
            raise NoiseExpError(f"dataset.offset and dataset.limit must be >= 0, got {self.offset} and {self.limit}")
        end = None if self.limit is None else self.offset + self.limit
        prompts = prompts[self.offset:end]
        if not 0 <= self.shard_index < max(1, self.num_shards):
            raise NoiseExpError(f"dataset.shard_index must be in 0..{self.num_shards - 1}, got {self.shard_index}")
        prompts = prompts[self.shard_index::max(1, self.num_shards)]
        if not prompts:
            raise NoiseExpError(f"no prompts to run from {path} (offset={self.offset}, limit={self.limit}, "
                                f"shard {self.shard_index}/{self.num_shards})")
        ids = [p.id for p in prompts]
        if len(set(ids)) != len(ids):
            raise NoiseExpError(f"{path}: duplicate prompt ids in column {self.id_field!r}")
        return prompts

    def _read(self, path: Path) -> list[dict[str, Any]]:
        suffix = path.suffix.lower()
        try:
            text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM (Excel's UTF-8 CSV) is not part of the text
        except UnicodeDecodeError as err:
            raise NoiseExpError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
        if suffix == ".txt":
            return [{self.text_field: line.strip()} for line in text.splitlines() if line.strip()]
        if suffix == ".jsonl":
            rows = []
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise NoiseExpError(f"{path}:{lineno}: malformed JSON line ({err.msg})") from None
                if not isinstance(row, dict):
                    raise NoiseExpError(f"{path}:{lineno}: expected a JSON object per line")
                if self.text_field not in row:
                    raise NoiseExpError(f"{path}:{lineno}: no {self.text_field!r} field")
                if not isinstance(row[self.text_field], str):
                    value = json.dumps(row[self.text_field])
                    value = value if len(value) <= 40 else value[:37] + "..."
                    raise NoiseExpError(f"{path}:{lineno}: {self.text_field!r} is {value}, expected a string")
                rows.append(row)
            return rows
        if suffix in (".csv", ".tsv"):
            return self._read_csv(text, path, "\t" if suffix == ".tsv" else ",")
        raise NoiseExpError(f"{path}: unsupported prompt file type {suffix!r}; use .txt (one prompt per line), .csv or .jsonl")

    def _read_csv(self, text: str, path: Path, delimiter: str) -> list[dict[str, Any]]:
        reader = csv.reader(text.splitlines(), delimiter=delimiter, strict=True)
        try:
            header = next(reader)
            records = list(reader)
        except StopIteration:
            raise NoiseExpError(f"{path} is empty") from None
        except csv.Error as err:
            raise NoiseExpError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None
        header = [h.strip() for h in header]
        if self.text_field not in header:
            raise NoiseExpError(f"{path}: no {self.text_field!r} column in the header {header}; "
                                f"name the prompt column '{self.text_field}' or set dataset.text_field")
        rows = []
        for lineno, record in enumerate(records, 2):
            if not record:
                continue
            if len(record) != len(header):
                raise NoiseExpError(f"{path}:{lineno}: malformed CSV row: {len(record)} fields, header has {len(header)} "
                                    f"(quote prompts that contain '{delimiter}')")
            rows.append(dict(zip(header, record)))
        return rows

    def _prompt(self, index: int, row: dict[str, Any], path: Path) -> Prompt:
        if self.id_field:
            try:
                prompt_id = int(row[self.id_field])
            except (KeyError, ValueError, TypeError):
                raise NoiseExpError(f"{path}: row {index} has no integer {self.id_field!r} id") from None
        else:
            prompt_id = index
        meta = {k: row[k] for k in self.meta_fields if k in row}
        return Prompt(prompt_id, str(row[self.text_field]).strip(), self.name, meta)


def single_prompt(text: str) -> list[Prompt]:
    """`prompt="..."` on the command line: one prompt with id 0."""
    if not str(text).strip():
        raise NoiseExpError("prompt='' is empty; give a prompt text")
    return [Prompt(0, str(text).strip(), "prompt")]
