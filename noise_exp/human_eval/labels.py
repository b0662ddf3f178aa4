"""Correctness labels: "is this image right for its prompt?" (yes / no / unsure), one image at a time.

The items are every image of a run folder (or of every run below a sweep folder), one per `results.csv` row, with
the same path checks as the pairs (`pairs._safe_image`). Labels go to the served folder's `human_eval.sqlite`, in a
`labels` table next to the votes, with the same guarantees: one committed INSERT per label, and
`UNIQUE(annotator, item_id)` refuses a second label.

Blinding: the page addresses an item by an opaque key (a hash of its id), never by its id, which names the variant
(`stable`, `unstable`, ...); the order is shuffled per annotator, as for pairs.
"""
from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from noise_exp.data.shapes import parse_caption
from noise_exp.errors import NoiseExpError
from noise_exp.human_eval.pairs import _safe_image, run_results
from noise_exp.rundir.votes import VoteStore


PERCEPTION = (
    "A shape is what a person would call it at a glance (a square with slightly rounded corners is a square; one "
    "object filled with two tones is one object); a colour is the name a person would give it (orange is neither "
    "red nor yellow). Answer unsure when you cannot tell."
)
GENERAL_RULE = "Answer yes when the image shows what the prompt asks for, no when it does not. " + PERCEPTION
# GenEval's semantics (djghosh13/geneval, evaluation/evaluate_images.py), tag by tag, as a person applies them.
_TAG_RULES = {
    "single_object": "Right when at least one {0} is drawn; its colour and any other objects do not matter.",
    "two_object": "Right when at least one {0} and at least one {1} are drawn; colours and extra objects do not "
                  "matter.",
    "counting": "Right when exactly {n} {0}s are drawn (no more, no fewer){colour_all}; other shapes do not matter.",
    "colors": "Right when a {0} is drawn and it is {c0} (if there are several, the clearest one); other objects do "
              "not matter.",
    "color_attr": "Right when a {c0} {0} and a {c1} {1} are drawn; extra objects do not matter.",
    "position": "Right when a {c0}{0} and a {c1}{1} are drawn and the {0} is clearly {rel} the {1} (the centres "
                "apart mostly in that direction); extra objects do not matter.",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    annotator   TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    run         TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    prompt_id   INTEGER NOT NULL,
    variant     TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    label       TEXT NOT NULL CHECK (label IN ('yes', 'no', 'unsure')),
    created_at  TEXT NOT NULL,
    UNIQUE (annotator, item_id)
);
"""


def label_rule(prompt: str) -> str:
    """The rule an annotator follows for this prompt: GenEval's, per tag, for a shapes-world caption; else general."""
    try:
        target = parse_caption(prompt)
    except NoiseExpError:
        return GENERAL_RULE
    groups = target.groups
    words = {f"c{i}": group.color or "any colour" for i, group in enumerate(groups)}
    if target.tag == "position":
        words = {f"c{i}": f"{group.color} " if group.color else "" for i, group in enumerate(groups)}
    colour = groups[0].color
    text = _TAG_RULES[target.tag].format(
        *(group.shape for group in groups), n=groups[0].count, rel=target.relation,
        colour_all=f" and all of them are {colour}" if colour else "", **words)
    return f"{text} {PERCEPTION}"


@dataclass(frozen=True)
class Item:
    """One image to label: a results.csv row of one run; `key` is what the page sees (it does not name the variant)."""

    item_id: str  # <run>/<dataset>/<prompt_id>/<variant>
    key: str
    run: str
    dataset: str
    prompt_id: int
    variant: str
    prompt: str
    image: Path  # resolved, checked to lie inside the served folder


def item_key(item_id: str) -> str:
    return hashlib.sha256(("item\x1f" + item_id).encode("utf-8")).hexdigest()[:20]


def item_id_of(run: str, dataset: object, prompt_id: object, variant: object) -> str:
    """An image's label id, `<run>/<dataset>/<prompt_id>/<variant>`: what labels and audits join on."""
    return f"{run}/{dataset}/{int(prompt_id)}/{variant}"


def build_items(folder: Path) -> tuple[Path, tuple[Item, ...], tuple[str, ...]]:
    """(served root, every image of the run or sweep folder in canonical order, what was skipped and why)."""
    root = Path(folder).resolve()
    items: list[Item] = []
    skipped: list[str] = []
    for run_folder, run, frame in run_results(root):
        for row in frame.sort_values(["dataset", "prompt_id", "variant"]).itertuples(index=False):
            item_id = item_id_of(run, row.dataset, row.prompt_id, row.variant)
            image = _safe_image(root, run_folder, row.image)
            if image is None:
                skipped.append(f"{item_id}: image missing, not an image, or outside {root}")
                continue
            items.append(Item(item_id, item_key(item_id), run, str(row.dataset), int(row.prompt_id), str(row.variant),
                              str(row.prompt), image))
    if not items:
        raise NoiseExpError(f"no images to label in {root} (results.csv rows with an image inside the folder)")
    return root, tuple(items), tuple(skipped)


def labelling_order(annotator: str, items: tuple[Item, ...]) -> list[Item]:
    """The order in which this annotator meets the items: shuffled per annotator, stable across reloads."""
    return sorted(items, key=lambda item: (hashlib.sha256(f"order\x1f{annotator}\x1f{item.item_id}".encode()).digest(),
                                           item.item_id))


@dataclass(frozen=True)
class Label:
    annotator: str
    item_id: str
    run: str
    dataset: str
    prompt_id: int
    variant: str
    prompt: str
    label: str
    created_at: str


LABEL_COLUMNS = tuple(field.name for field in fields(Label))


class DuplicateLabel(Exception):
    """This annotator has already labelled this image."""


class LabelStore(VoteStore):
    """The votes database with its `labels` table (created on first use; votes are untouched)."""

    def __init__(self, path: Path):
        super().__init__(path)
        with closing(self._connect()) as conn:
            conn.executescript(_SCHEMA)

    def record_label(self, label: Label) -> None:
        self._insert("labels", LABEL_COLUMNS, label,
                     DuplicateLabel(f"annotator {label.annotator!r} already labelled this image"))

    def labelled_item_ids(self, annotator: str) -> set[str]:
        return self._annotator_ids("labels", "item_id", annotator)


def read_labels(path: Path) -> pd.DataFrame:
    """All labels of a database, oldest first, read-only (an empty frame when it has no labels table)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='labels'").fetchone()
        rows = conn.execute(f"SELECT {', '.join(LABEL_COLUMNS)} FROM labels ORDER BY id").fetchall() if has_table else []
    return pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
