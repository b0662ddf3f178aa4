"""Votes in SQLite inside the served folder: one row per vote, committed before the server answers.

The database runs in WAL mode with `synchronous=FULL`, every write is a single autocommitted INSERT on its own
connection, and `UNIQUE(annotator, pair_id)` makes the database, not the web process, the judge of duplicates,
so concurrent annotators (threads or several server processes) cannot lose or double a vote, and a killed
server loses nothing it has acknowledged.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

DB_NAME = "human_eval.sqlite"
SCHEMA_VERSION = 1
CHOICES = ("left", "right", "tie")
TIE = "tie"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    annotator     TEXT NOT NULL,
    pair_id       TEXT NOT NULL,
    run           TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    prompt_id     INTEGER NOT NULL,
    comparison    TEXT NOT NULL,
    variant_a     TEXT NOT NULL,
    variant_b     TEXT NOT NULL,
    left_variant  TEXT NOT NULL,
    right_variant TEXT NOT NULL,
    choice        TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie')),
    winner        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (annotator, pair_id)
);
CREATE INDEX IF NOT EXISTS votes_by_annotator ON votes (annotator);
"""


@dataclass(frozen=True)
class Vote:
    """One judgement. `choice` is the side clicked; `winner` is that side's variant, or "tie"."""

    annotator: str
    pair_id: str
    run: str
    dataset: str
    prompt_id: int
    comparison: str
    variant_a: str
    variant_b: str
    left_variant: str
    right_variant: str
    choice: str
    winner: str
    created_at: str


VOTE_COLUMNS = tuple(field.name for field in fields(Vote))


class DuplicateVote(Exception):
    """This annotator has already voted on this pair."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class VoteStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: each INSERT commits on its own before execute() returns.
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _insert(self, table: str, columns: tuple[str, ...], row: object, duplicate: Exception) -> None:
        """One committed INSERT of the dataclass `row`; `duplicate` is raised when UNIQUE refuses it."""
        placeholders = ", ".join("?" for _ in columns)
        with closing(self._connect()) as conn:
            try:
                conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", astuple(row))
            except sqlite3.IntegrityError as err:
                if "UNIQUE" in str(err):
                    raise duplicate from err
                raise

    def _annotator_ids(self, table: str, column: str, annotator: str) -> set[str]:
        with closing(self._connect()) as conn:
            rows = conn.execute(f"SELECT {column} FROM {table} WHERE annotator = ?", (annotator,)).fetchall()
        return {row[0] for row in rows}

    def record(self, vote: Vote) -> None:
        self._insert("votes", VOTE_COLUMNS, vote,
                     DuplicateVote(f"annotator {vote.annotator!r} already voted on pair {vote.pair_id!r}"))

    def voted_pair_ids(self, annotator: str) -> set[str]:
        return self._annotator_ids("votes", "pair_id", annotator)


def read_votes(path: Path) -> list[Vote]:
    """All votes of a database, oldest first (read-only: a report never creates or changes a database)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
        rows = conn.execute(f"SELECT {', '.join(VOTE_COLUMNS)} FROM votes ORDER BY id").fetchall()
    return [Vote(*row) for row in rows]
