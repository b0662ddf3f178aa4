"""Image pairs to judge, built from the `results.csv` of a run folder or of every run below a sweep folder.

A pair is one prompt of one run shown as two of its variants (e.g. `stable` vs `unstable`). Image paths come
from the `image` column and are resolved once, here: a path that leaves the served folder (`..`, an absolute
path, a symlink pointing outside) or that is not an image file never becomes part of a pair, so the server can
only ever send files that this module accepted.

Blinding: which variant is shown on the left and the order in which an annotator meets the pairs are both drawn
from a hash of (annotator, pair id), so they differ between annotators but a reload shows the same page.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from noise_exp.errors import NoiseExpError
from noise_exp.methods.registry import declared_pairs, known_variants, run_pairs
from noise_exp.rundir.declaration import read_declaration
from noise_exp.rundir.results import RESULTS_FILE, find_runs, read_results

log = logging.getLogger(__name__)

# The comparisons shown are the methods' declared ones (docs/CONVENTIONS.md: "A:B", the winning rate is A's),
# unless `--comparisons` names others.
Comparisons = tuple[tuple[str, str], ...]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
SIDES = ("left", "right")


@dataclass(frozen=True)
class Pair:
    """Two variants of one prompt of one run; `variant_a` is the side whose winning rate is reported."""

    pair_id: str
    run: str  # run folder relative to the served folder, "." when the served folder is the run
    dataset: str
    prompt_id: int
    prompt: str
    variant_a: str
    variant_b: str
    image_a: Path  # resolved, checked to lie inside the served folder
    image_b: Path

    @property
    def comparison(self) -> str:
        return comparison_key(self.variant_a, self.variant_b)


@dataclass(frozen=True)
class PairSet:
    """All pairs of a served folder, in a fixed canonical order, plus what was left out and why."""

    root: Path
    pairs: tuple[Pair, ...]
    skipped: tuple[str, ...]

    def by_id(self) -> dict[str, Pair]:
        return {pair.pair_id: pair for pair in self.pairs}


def comparison_key(variant_a: str, variant_b: str) -> str:
    return f"{variant_a}:{variant_b}"


def parse_comparisons(text: str | None) -> Comparisons | None:
    """`"stable:unstable,optimized:original"` -> (("stable", "unstable"), ("optimized", "original")); None when
    unset: each run's declared comparisons."""
    if text is None or not text.strip():
        return None
    comparisons = []
    for item in text.split(","):
        parts = [part.strip() for part in item.split(":")]
        if len(parts) != 2 or not all(parts):
            raise NoiseExpError(f"comparison {item.strip()!r} is not of the form A:B (e.g. stable:unstable)")
        known = known_variants()
        unknown = [part for part in parts if part not in known]
        if unknown:
            raise NoiseExpError(f"unknown variant {unknown[0]!r} in comparisons; known: {', '.join(known)}")
        if parts[0] == parts[1]:
            raise NoiseExpError(f"comparison {item.strip()!r} compares a variant with itself")
        comparisons.append((parts[0], parts[1]))
    return tuple(dict.fromkeys(comparisons))


def _safe_image(root: Path, run_folder: Path, relative: object) -> Path | None:
    if not isinstance(relative, str) or not relative.strip():
        return None
    candidate = Path(relative.strip())
    if candidate.is_absolute():
        return None
    return served_image(root, run_folder / candidate)


def served_image(root: Path, path: Path) -> Path | None:
    """`path` resolved now (symlinks followed), if it is an image file inside `root`; else None. Checked when the
    pairs are built and again on every request: a file replaced by a symlink pointing outside is never served."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root) or resolved.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return resolved if resolved.is_file() else None


def _read_results(run_folder: Path) -> pd.DataFrame:
    frame = read_results(run_folder, dtype={"image": str, "prompt": str, "variant": str, "dataset": str})
    if "dataset" not in frame.columns:
        frame["dataset"] = ""
    frame["dataset"] = frame["dataset"].fillna("")
    prompt_ids = pd.to_numeric(frame["prompt_id"], errors="coerce")
    if prompt_ids.isna().any() or (prompt_ids % 1 != 0).any():
        raise NoiseExpError(f"{run_folder / RESULTS_FILE}: column prompt_id must hold integers")
    frame["prompt_id"] = prompt_ids.astype(int)
    return frame


def run_results(root: Path) -> Iterator[tuple[Path, str, pd.DataFrame]]:
    """(run folder, its path relative to `root` ("." for root itself), its results with one row per dataset, prompt
    and variant) for every run folder of the run or sweep folder `root`."""
    for run_folder in find_runs(root):
        frame = _read_results(run_folder)
        # A resumed run may list a variant twice; the last row is the one whose image is on disk.
        yield (run_folder, run_folder.relative_to(root).as_posix(),
               frame.drop_duplicates(subset=["dataset", "prompt_id", "variant"], keep="last"))


def build_pairs(folder: Path, comparisons: Comparisons | None = None) -> PairSet:
    """Every (run, prompt, comparison) whose two variants both have an image inside `folder`; `comparisons` None:
    each run's declared ones (`run_pairs`: its method.json, or the paper's for a folder that records none)."""
    root = Path(folder).resolve()
    pairs: list[Pair] = []
    skipped: list[str] = []
    wanted: dict[tuple[str, str], None] = {}
    for run_folder, run, frame in run_results(root):
        run_comparisons = comparisons or run_pairs(read_declaration(run_folder))
        wanted.update(dict.fromkeys(run_comparisons))
        for (dataset, prompt_id), rows in frame.groupby(["dataset", "prompt_id"], sort=True):
            by_variant = {row.variant: row for row in rows.itertuples(index=False)}
            for variant_a, variant_b in run_comparisons:
                if variant_a not in by_variant or variant_b not in by_variant:
                    continue
                pair_id = f"{run}/{dataset}/{int(prompt_id)}/{variant_a}-vs-{variant_b}"
                image_a = _safe_image(root, run_folder, by_variant[variant_a].image)
                image_b = _safe_image(root, run_folder, by_variant[variant_b].image)
                if image_a is None or image_b is None:
                    skipped.append(f"{pair_id}: image missing, not an image, or outside {root}")
                    continue
                pairs.append(
                    Pair(
                        pair_id=pair_id,
                        run=run,
                        dataset=str(dataset),
                        prompt_id=int(prompt_id),
                        prompt=str(by_variant[variant_a].prompt),
                        variant_a=variant_a,
                        variant_b=variant_b,
                        image_a=image_a,
                        image_b=image_b,
                    )
                )
    for reason in skipped:
        log.warning("skipped pair %s", reason)
    if not pairs:
        listed = ", ".join(comparison_key(a, b) for a, b in (comparisons or wanted or declared_pairs()))
        raise NoiseExpError(f"no image pairs for comparisons {listed} in {root}")
    return PairSet(root=root, pairs=tuple(pairs), skipped=tuple(skipped))


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()


def shown_order(annotator: str, pair: Pair) -> tuple[str, str]:
    """(left variant, right variant) this annotator sees for this pair; stable across reloads."""
    if _digest("side", annotator, pair.pair_id)[0] & 1:
        return pair.variant_b, pair.variant_a
    return pair.variant_a, pair.variant_b


def image_for_side(annotator: str, pair: Pair, side: str) -> Path:
    left, _ = shown_order(annotator, pair)
    wants_left = side == "left"
    return pair.image_a if (left == pair.variant_a) == wants_left else pair.image_b


def annotator_sequence(annotator: str, pairs: tuple[Pair, ...]) -> list[Pair]:
    """The order in which this annotator meets the pairs: shuffled per annotator, comparisons interleaved."""
    return sorted(pairs, key=lambda pair: (_digest("order", annotator, pair.pair_id), pair.pair_id))
