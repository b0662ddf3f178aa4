"""A run's view of the bank: the candidates of its scope (read once), its own writer, and what it reused; and the
run folder's `bank.json`, which names the bank a run used (so `python -m noise_exp.bank <run>` finds it)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from noise_exp.candidates.keys import BankScope, candidate_key
from noise_exp.candidates.storage import CandidateBank, StoredCandidate
from noise_exp.files import atomic_write_bytes

RUN_LINK = "bank.json"


@dataclass
class BankSession:
    """Lookups and appends under one scope. `keep_images`: store decoded candidates' images in the bank."""

    bank: CandidateBank
    scope: BankScope
    model_config: dict[str, Any] = field(default_factory=dict)  # rebuilds the model that can regenerate a candidate
    run: str = ""
    keep_images: bool = True
    reused: int = 0
    computed: int = 0

    def __post_init__(self) -> None:
        self.writer = self.bank.writer(self.run)
        self._index: dict[str, StoredCandidate] | None = None

    def key(self, prompt: str, seed: int) -> str:
        return candidate_key(self.scope.digest, prompt, seed)

    def _candidates(self) -> dict[str, StoredCandidate]:
        if self._index is None:
            frame = self.bank.read().in_scope(self.scope.digest)
            self._index = {row["key"]: StoredCandidate.from_row(row) for row in frame.to_dict("records")}
        return self._index

    def known(self, prompt: str, seeds: Sequence[int], scorers: Mapping[str, str] | None = None
              ) -> dict[int, StoredCandidate]:
        """The seeds' candidates already in the bank, counted as reused; with `scorers` (evaluator -> identity),
        only those scored by exactly those scorers (a score by another version of an evaluator is recomputed)."""
        index = self._candidates()
        found = {}
        for seed in seeds:
            candidate = index.get(self.key(prompt, seed))
            if candidate is not None and candidate.scored_by(scorers or {}):
                found[int(seed)] = candidate
        self.reused += len(found)
        return found

    def add(self, candidates: Sequence[StoredCandidate]) -> None:
        """Append freshly computed candidates (this writer's file is rewritten atomically)."""
        self.writer.add(self.scope, candidates, self.model_config)
        index = self._candidates()
        for candidate in candidates:
            index[self.key(candidate.prompt, candidate.seed)] = candidate
        self.computed += len(candidates)

    def save_image(self, prompt: str, seed: int, png: bytes) -> str:
        return self.bank.save_image(self.key(prompt, seed), png)

    def summary(self) -> str:
        return f"bank: reused {self.reused}, computed {self.computed} candidates ({self.bank.path})"


def write_run_link(run_dir: Path, session: BankSession) -> None:
    """Record in the run folder which bank (absolute path) and scope its candidates are in."""
    link = {"path": str(session.bank.path.resolve()), "scope": session.scope.digest}
    atomic_write_bytes(Path(run_dir) / RUN_LINK, json.dumps(link, indent=1).encode("utf-8"))


def read_run_link(run_dir: Path) -> Path | None:
    """The bank a run folder used, or None when it used none."""
    path = Path(run_dir) / RUN_LINK
    return Path(json.loads(path.read_text(encoding="utf-8"))["path"]) if path.is_file() else None
