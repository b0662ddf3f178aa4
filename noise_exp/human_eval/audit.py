"""An evaluator audited against correctness labels: agreement, precision and recall of "correct", per tag.

Definitions (also in docs/human_eval.md):
- An image's label is the majority of its annotators' yes/no labels; "unsure" labels and ties leave it out.
- The evaluator says "correct" when its score in results.csv is >= `threshold` (0.5: a 0/1 judge as is).
- Agreement = (both say correct + both say wrong) / n; precision of "correct" = TP / (TP + FP), the share of the
  images the evaluator calls correct that the labels call correct; recall = TP / (TP + FN), the share of the
  labelled-correct images the evaluator calls correct. 95% intervals: Wilson score intervals on those counts.
- Tag: results.csv's `tag` column when present, else the shapes-world tag of the prompt, else "all".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from noise_exp.data.shapes import TAGS, tag_of
from noise_exp.errors import NoiseExpError
from noise_exp.human_eval.labels import LABEL_COLUMNS, build_items, item_id_of, read_labels
from noise_exp.human_eval.pairs import run_results
from noise_exp.report.human import find_database
from noise_exp.report.tables import wilson_interval
from noise_exp.rundir.results import RESULTS_FILE


@dataclass(frozen=True)
class Rate:
    """k of n, with its 95% Wilson interval (NaN when n = 0)."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n) if self.n else (math.nan, math.nan)

    def text(self) -> str:
        if not self.n:
            return "n/a"
        low, high = self.interval
        return f"{self.k}/{self.n} = {self.value:.3f} [{low:.2f}, {high:.2f}]"


@dataclass(frozen=True)
class AuditRow:
    """One group of labelled images (a tag, a variant, or `overall`)."""

    group: str
    n: int
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int

    @property
    def agreement(self) -> Rate:
        return Rate(self.true_positive + self.true_negative, self.n)

    @property
    def precision(self) -> Rate:
        return Rate(self.true_positive, self.true_positive + self.false_positive)

    @property
    def recall(self) -> Rate:
        return Rate(self.true_positive, self.true_positive + self.false_negative)

    @property
    def labelled_correct(self) -> float:
        return (self.true_positive + self.false_negative) / self.n if self.n else math.nan

    @property
    def judged_correct(self) -> float:
        return (self.true_positive + self.false_positive) / self.n if self.n else math.nan


@dataclass(frozen=True)
class Audit:
    evaluator: str
    threshold: float
    table: pd.DataFrame  # one row per labelled image: item_id, run, variant, prompt, tag, image, label, score, ...
    by_tag: tuple[AuditRow, ...]
    by_variant: tuple[AuditRow, ...]
    by_run: tuple[AuditRow, ...]  # one row per run folder below a sweep (empty for a single run)
    overall: AuditRow
    unlabelled: int  # images without a yes/no majority (unlabelled, unsure or tied)


def _row(group: str, frame: pd.DataFrame) -> AuditRow:
    human, judge = frame["human_correct"].astype(bool), frame["judged_correct"].astype(bool)
    return AuditRow(group, len(frame), int((human & judge).sum()), int((~human & judge).sum()),
                    int((human & ~judge).sum()), int((~human & ~judge).sum()))


def majority_labels(labels: pd.DataFrame) -> pd.Series:
    """item_id -> True (majority yes) / False (majority no); unsure labels and ties are left out."""
    decided = labels[labels["label"].isin(("yes", "no"))]
    votes = decided.assign(yes=decided["label"].eq("yes")).groupby("item_id")["yes"].agg(["sum", "count"])
    votes = votes[votes["sum"] * 2 != votes["count"]]
    return (votes["sum"] * 2 > votes["count"]).rename("human_correct")


def load_labels(folder: Path, labels_csv: Path | None = None) -> pd.DataFrame:
    """The labels that concern `folder`: from a CSV (as `export --labels` writes) or the folder's database."""
    if labels_csv is not None:
        try:
            labels = pd.read_csv(labels_csv, dtype={"item_id": str, "label": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise NoiseExpError(f"cannot read {labels_csv}: {err}") from err
        missing = {"annotator", "item_id", "label"} - set(labels.columns)
        if missing:
            raise NoiseExpError(f"{labels_csv} lacks column(s) {', '.join(sorted(missing))}")
        return labels
    database, prefix = find_database(folder)
    if database is None:
        raise NoiseExpError(f"no labels for {folder}: label it first (python -m noise_exp.human_eval serve {folder}, "
                            "then open /label)")
    labels = read_labels(database)
    if prefix is not None:
        labels = labels[labels["item_id"].str.startswith(prefix + "/")]
        served_as_run = "./" if (Path(folder) / RESULTS_FILE).is_file() else ""  # a single run's items are "./..."
        labels = labels.assign(item_id=served_as_run + labels["item_id"].str.slice(len(prefix) + 1))
    return labels


def _tag(prompt: str) -> str:
    try:
        return tag_of(prompt)
    except NoiseExpError:
        return "all"


def _scores(root: Path, evaluator: str) -> pd.DataFrame:
    frames = []
    for run_folder, run, frame in run_results(root):
        if evaluator not in frame.columns:
            raise NoiseExpError(f"{run_folder / RESULTS_FILE} has no {evaluator!r} column: score it first "
                                f"(python -m noise_exp.score {run_folder} evaluator=[{evaluator}])")
        frame = frame.assign(item_id=[item_id_of(run, d, p, v) for d, p, v in
                                      zip(frame["dataset"], frame["prompt_id"], frame["variant"])], run=run)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def audit(folder: Path, evaluator: str, threshold: float = 0.5, labels_csv: Path | None = None) -> Audit:
    """Compare `evaluator`'s scores in the results.csv files of `folder` with the correctness labels."""
    root, items, _ = build_items(folder)
    images = {item.item_id: item.image.relative_to(root).as_posix() for item in items}
    labels = load_labels(root, labels_csv)
    unknown = sorted(set(labels["item_id"]) - set(images))
    if unknown:
        raise NoiseExpError(f"{len(unknown)} label(s) name images that {root} does not hold, e.g. {unknown[0]!r}")
    decided = majority_labels(labels)
    scores = _scores(root, evaluator)
    table = scores[scores["item_id"].isin(decided.index)].copy()
    if table.empty:
        raise NoiseExpError(f"no image of {root} has a yes/no label yet")
    if table[evaluator].isna().any():
        raise NoiseExpError(f"{int(table[evaluator].isna().sum())} labelled image(s) have no {evaluator} score")
    table["human_correct"] = table["item_id"].map(decided)
    table["judged_correct"] = table[evaluator].astype(float) >= threshold
    table["tag"] = table["tag"] if "tag" in table.columns else table["prompt"].map(_tag)
    table["image"] = table["item_id"].map(images)
    table["agree"] = table["human_correct"] == table["judged_correct"]
    order = [tag for tag in (*TAGS, "all") if tag in set(table["tag"])]
    order += sorted(set(table["tag"]) - set(order))
    return Audit(
        evaluator=evaluator,
        threshold=threshold,
        table=table.reset_index(drop=True),
        by_tag=tuple(_row(tag, table[table["tag"] == tag]) for tag in order),
        by_variant=tuple(_row(str(v), group) for v, group in table.groupby("variant", sort=True)),
        by_run=tuple(_row(str(run), group) for run, group in table.groupby("run", sort=True))
        if table["run"].nunique() > 1 else (),
        overall=_row("overall", table),
        unlabelled=len(images) - len(table),
    )


def stability_link(result: Audit) -> str | None:
    """Whether the evaluator's errors go with s(eps): mean s of agreeing vs disagreeing images, Mann-Whitney U."""
    table = result.table
    if "stability" not in table.columns or table["stability"].isna().all():
        return None
    from scipy.stats import mannwhitneyu

    errors, right = table.loc[~table["agree"], "stability"].dropna(), table.loc[table["agree"], "stability"].dropna()
    if errors.empty or right.empty:
        return f"s(eps): no {'errors' if errors.empty else 'agreements'} to compare."
    p_value = float(mannwhitneyu(errors, right).pvalue)
    return (f"s(eps) of the images it gets wrong: mean {errors.mean():.3f} (n = {len(errors)}); of those it gets "
            f"right: {right.mean():.3f} (n = {len(right)}); Mann-Whitney p = {p_value:.2g}.")


def _table(rows: tuple[AuditRow, ...], title: str) -> list[str]:
    lines = [f"| {title} | n | labelled correct | judged correct | agreement [95% CI] | precision of correct | "
             "recall of correct |", "|---|---:|---:|---:|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.group} | {row.n} | {row.labelled_correct:.3f} | {row.judged_correct:.3f} | "
                     f"{row.agreement.text()} | {row.precision.text()} | {row.recall.text()} |")
    return lines


def audit_markdown(result: Audit, disagreements: bool = True) -> str:
    lines = [f"## Audit of `{result.evaluator}` against correctness labels",
             "",
             f"{result.overall.n} labelled images ({result.unlabelled} without a yes/no label left out); the "
             f"evaluator says correct when its score >= {result.threshold:g}.",
             "", *_table((*result.by_tag, result.overall), "tag"), "", *_table(result.by_variant, "variant"), ""]
    if result.by_run:
        lines += [*_table(result.by_run, "run"), ""]
    link = stability_link(result)
    if link:
        lines += [link, ""]
    wrong = result.table[~result.table["agree"]]
    if disagreements and not wrong.empty:
        lines += [f"### Disagreements ({len(wrong)})", "", "| image | prompt | label | score |", "|---|---|---|---:|"]
        for row in wrong.sort_values(["tag", "item_id"]).itertuples(index=False):
            label = "correct" if row.human_correct else "wrong"
            lines.append(f"| {row.image} | {row.prompt} | {label} | {getattr(row, result.evaluator):g} |")
        lines.append("")
    return "\n".join(lines)


def export_labels(folder: Path, out: Path) -> int:
    """Write the labels that concern `folder` as CSV; returns their number."""
    labels = load_labels(folder)
    labels[list(LABEL_COLUMNS)].to_csv(out, index=False)
    return len(labels)


__all__ = ["Audit", "AuditRow", "Rate", "audit", "audit_markdown", "export_labels", "majority_labels",
           "stability_link"]
