"""The bank on disk: append-only Parquet files, one per writer, and an index derived by reading them.

```
<bank>/parts/<utc time>_<host>_<pid>_<token>.parquet   one writer's candidates (a run, a SLURM shard)
<bank>/images/<key[:2]>/<key>.png                        decoded candidates (`method.score_candidates`)
```

A writer owns its file: it rewrites it whole, atomically (temp file + rename), after each prompt, so a reader (or a
writer killed at any moment) sees the file before or after a prompt, never a partial row; no file is shared, so any
number of SLURM jobs write at once. Past `ROWS_PER_FILE` rows a writer starts its next file. The index is the union
of all files, read on demand: a key found in several files (two jobs that computed the same candidate, or a later
run that added scores) is one candidate, each column taken from the earliest file that has it. A file that cannot
be read is named in one `warning:` line and skipped; the rest of the bank reads.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from noise_exp.candidates.keys import BankScope, candidate_key
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes

PARTS = "parts"
IMAGES = "images"
METADATA = b"noise_exp.bank"
SCORE_PREFIX = "score."
SCORER_PREFIX = "scorer."  # `scorer.<evaluator>`: the identity (`Evaluator.identity`) of the scorer of `score.<evaluator>`
STABILITY_PREFIX = "stability_"
ROWS_PER_FILE = 50_000
UNKNOWN = "unknown"  # the scorer of a score stored before scorers were recorded: never reused
# every row has these; `score.<evaluator>` columns are added per evaluator
COLUMNS = ["key", "scope", "prompt", "seed", "stability_cosine", "stability_pearson", "stability_neg_rmse", "nfe",
           "nfe_denoise", "seconds", "seconds_denoise", "seconds_scoring", "image", "device", "run", "written_at"]


@dataclass
class StoredCandidate:
    """One candidate as the bank keeps it: its noise is `draw_noise([seed])`, so only numbers are stored.

    `nfe` counts the network passes per sample of its denoise + invert round trip (CFG passes included),
    `nfe_denoise` those of the denoising half (what generating its image costs); seconds likewise, plus the share
    of decoding and scoring when it was scored. `image` is relative to the bank folder ("" when not kept)."""

    prompt: str
    seed: int
    stability: dict[str, float]  # similarity name (cosine, pearson, neg_rmse) -> s(eps)
    nfe: float
    nfe_denoise: float
    seconds: float
    seconds_denoise: float
    seconds_scoring: float = float("nan")
    scores: dict[str, float] = field(default_factory=dict)
    image: str = ""
    device: str = ""
    scorers: dict[str, str] = field(default_factory=dict)  # evaluator -> identity of the scorer of its score

    def row(self, scope: BankScope, run: str, written_at: str) -> dict[str, Any]:
        return {"key": candidate_key(scope.digest, self.prompt, self.seed), "scope": scope.digest,
                "prompt": self.prompt, "seed": int(self.seed),
                **{f"{STABILITY_PREFIX}{name}": float(value) for name, value in self.stability.items()},
                "nfe": float(self.nfe), "nfe_denoise": float(self.nfe_denoise), "seconds": float(self.seconds),
                "seconds_denoise": float(self.seconds_denoise), "seconds_scoring": float(self.seconds_scoring),
                "image": self.image or None, "device": self.device, "run": run, "written_at": written_at,
                **{f"{SCORE_PREFIX}{name}": float(value) for name, value in self.scores.items()},
                **{f"{SCORER_PREFIX}{name}": self.scorers.get(name) for name in self.scores}}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "StoredCandidate":
        def present(name: str) -> bool:
            value = row.get(name)
            return value is not None and not (isinstance(value, float) and np.isnan(value))

        return cls(prompt=str(row["prompt"]), seed=int(row["seed"]),
                   stability={name[len(STABILITY_PREFIX):]: float(row[name]) for name in row
                              if name.startswith(STABILITY_PREFIX) and present(name)},
                   nfe=float(row["nfe"]), nfe_denoise=float(row["nfe_denoise"]), seconds=float(row["seconds"]),
                   seconds_denoise=float(row["seconds_denoise"]), seconds_scoring=float(row["seconds_scoring"]),
                   scores={name[len(SCORE_PREFIX):]: float(row[name]) for name in row
                           if name.startswith(SCORE_PREFIX) and present(name)},
                   image=str(row["image"]) if present("image") else "", device=str(row.get("device") or ""),
                   scorers={name[len(SCORER_PREFIX):]: str(row[name]) for name in row
                            if name.startswith(SCORER_PREFIX) and present(name)})

    def scored_by(self, scorers: Mapping[str, str]) -> bool:
        """Whether it has a score of each evaluator in `scorers` (name -> identity) by that very scorer."""
        return all(name in self.scores and self.scorers.get(name) == identity for name, identity in scorers.items())


@dataclass
class BankContents:
    """The bank's index: one row per key (columns: COLUMNS, `score.*`), the scopes and model configs of its files,
    the files skipped as unreadable and how many duplicate rows were merged."""

    frame: pd.DataFrame
    scopes: dict[str, BankScope]
    model_configs: dict[str, dict[str, Any]]
    skipped: list[Path]
    merged_duplicates: int = 0

    def in_scope(self, digest: str) -> pd.DataFrame:
        return self.frame[self.frame["scope"] == digest]

    def score_names(self, frame: pd.DataFrame | None = None) -> list[str]:
        """Evaluators with at least one score (in `frame`, or in the whole bank)."""
        frame = self.frame if frame is None else frame
        return [c[len(SCORE_PREFIX):] for c in frame.columns if c.startswith(SCORE_PREFIX) and frame[c].notna().any()]

    def one_scorer_each(self, frame: pd.DataFrame) -> list[str]:
        """`score_names(frame)`, refusing a score whose candidates were scored by different versions of its
        evaluator (a bank filled before and after an evaluator changed): they would be compared as one score."""
        names = self.score_names(frame)
        for name in names:
            scored = frame[frame[f"{SCORE_PREFIX}{name}"].notna()]
            scorer = f"{SCORER_PREFIX}{name}"
            identities = sorted(set(scored[scorer].fillna(UNKNOWN))) if scorer in scored.columns else [UNKNOWN]
            if len(identities) > 1:
                raise NoiseExpError(f"these candidates' {name} scores come from {len(identities)} versions of that "
                                    f"evaluator ({', '.join(identities)}); rescore them with a run "
                                    f"(method.score_candidates=true) or query a run folder")
        return names


class CandidateBank:
    """A bank folder. `create=True` makes it (a run with `bank.path`); otherwise it must exist."""

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        self.parts = self.path / PARTS
        if create:
            self.parts.mkdir(parents=True, exist_ok=True)
        elif not self.parts.is_dir():
            raise NoiseExpError(f"{self.path} is not a candidate bank (no {PARTS}/ folder)")
        self._warned: set[Path] = set()

    def files(self) -> list[Path]:
        """The writers' files; a writer's temp file (a dot file) is not one."""
        return sorted(p for p in self.parts.glob("*.parquet") if not p.name.startswith("."))

    def read(self) -> BankContents:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frames, scopes, configs, skipped = [], {}, {}, []
        for path in self.files():
            try:
                table = pq.read_table(path)
                meta = json.loads((table.schema.metadata or {}).get(METADATA, b"{}"))
                missing = set(COLUMNS) - set(table.column_names)
                if missing:
                    raise ValueError(f"lacks the columns {sorted(missing)}")
            except (pa.ArrowException, OSError, ValueError) as error:
                skipped.append(path)
                self._warn(path, error)
                continue
            scopes.update({digest: BankScope(settings) for digest, settings in meta.get("scopes", {}).items()})
            configs.update(meta.get("model_configs", {}))
            frame = table.to_pandas()
            frame["_file"] = path.name
            frames.append(frame)
        if not frames:
            return BankContents(pd.DataFrame(columns=COLUMNS), scopes, configs, skipped)
        rows = pd.concat(frames, ignore_index=True).sort_values(["written_at", "_file"], kind="stable")
        merged = rows.drop(columns="_file").groupby("key", sort=False, as_index=False).first()
        _pair_scores_with_scorers(rows, merged)
        return BankContents(merged.reset_index(drop=True), scopes, configs, skipped, len(rows) - len(merged))

    def _warn(self, path: Path, error: Exception) -> None:
        if path not in self._warned:
            self._warned.add(path)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"warning: bank file {path} is unreadable ({type(error).__name__}: {reason}); its candidates are "
                  f"skipped, the rest of the bank is read", file=sys.stderr, flush=True)

    def writer(self, run: str = "") -> "BankWriter":
        return BankWriter(self, run)

    def save_image(self, key: str, png: bytes) -> str:
        """Store a candidate's decoded image (before the row that names it); returns its path in the bank."""
        relative = f"{IMAGES}/{key[:2]}/{key}.png"
        atomic_write_bytes(self.path / relative, png)
        return relative


def _pair_scores_with_scorers(rows: pd.DataFrame, merged: pd.DataFrame) -> None:
    """Each key's score and its scorer's identity taken from one row: the latest-written scorer (a rescore by a
    changed evaluator supersedes), its earliest score. A score stored without an identity has scorer UNKNOWN."""
    for column in [c for c in rows.columns if c.startswith(SCORE_PREFIX)]:
        scorer = SCORER_PREFIX + column[len(SCORE_PREFIX):]
        scored = rows.loc[rows[column].notna(), ["key", column]].copy()
        scored[scorer] = rows[scorer].fillna(UNKNOWN) if scorer in rows.columns else UNKNOWN
        latest = scored.groupby("key", sort=False)[scorer].last()
        first = scored[scored[scorer].to_numpy() == scored["key"].map(latest).to_numpy()].groupby("key").first()
        merged[column] = merged["key"].map(first[column])
        merged[scorer] = merged["key"].map(first[scorer])


class BankWriter:
    """Appends candidates to this writer's own file (rewritten atomically); nothing is written until a first row."""

    def __init__(self, bank: CandidateBank, run: str = "") -> None:
        self.bank = bank
        self.run = run
        self._rows: list[dict[str, Any]] = []
        self._scopes: dict[str, dict[str, Any]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self.path = self._new_path()
        self.written = 0

    @staticmethod
    def _name() -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40]
        return f"{stamp}_{host}_{os.getpid()}_{secrets.token_hex(4)}.parquet"

    def _new_path(self) -> Path:
        return self.bank.parts / self._name()

    def add(self, scope: BankScope, candidates: Iterable[StoredCandidate],
            model_config: Mapping[str, Any] | None = None) -> None:
        """Append candidates of one scope (with the model config that can regenerate them) and flush."""
        written_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        rows = [c.row(scope, self.run, written_at) for c in candidates]
        if not rows:
            return
        if len(self._rows) + len(rows) > ROWS_PER_FILE and self._rows:  # this file is full: start the next one
            self._rows, self._scopes, self._configs = [], {}, {}
            self.path = self._new_path()
        self._scopes[scope.digest] = scope.settings
        if model_config is not None:
            self._configs[scope.digest] = dict(model_config)
        self._rows += rows
        self._flush()
        self.written += len(rows)

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.DataFrame(self._rows)
        for column in COLUMNS:
            if column not in frame.columns:
                frame[column] = np.nan
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = json.dumps({"scopes": self._scopes, "model_configs": self._configs}, default=str).encode("utf-8")
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA: meta})
        buffer = BytesIO()
        pq.write_table(table, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())
