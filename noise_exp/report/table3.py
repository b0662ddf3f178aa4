"""The paper's Table 3 for multi-view runs (SV3D on rendered orbits): per-view scores against ground truth.

Each kept variant's image is the strip of its generated views (`SV3DModel.decode`); it is cut back into
views and view i is scored against its ground-truth render (the paths in the prompt record's meta, see
`noise_exp.data.orbits`) with every configured evaluator (LPIPS, SSIM, CLIP-S with references). Scores are
averaged per object, then over objects. Files, under `<run>/<out_subdir>/`:

| file | content |
|---|---|
| `per_view.csv` | prompt_id, object, variant, view, frame, one column per evaluator |
| `per_object.csv` | prompt_id, object, variant, seed, stability, evaluator means over the views |
| `table3.csv`, `table3.md` | Model, Noise, one column per evaluator, stability, objects: means over objects |
| `strips/<prompt_id>.png` | rows: ground truth, then each variant; each row starts with the input view |
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Mapping, Sequence

import pandas as pd
from PIL import Image, ImageDraw

from noise_exp.errors import NoiseExpError
from noise_exp.imaging import horizontal_strip, open_image, prepare_view, split_strip, stack_rows
from noise_exp.methods.registry import variant_labels
from noise_exp.report.tables import LEGACY_LOWER_IS_BETTER, METRIC_LABELS, to_markdown, variant_order
from noise_exp.rundir.metrics import evaluator_directions, record_directions
from noise_exp.rundir.store import RunStore

PAPER_METRICS = ("lpips", "ssim", "clip_s")


@dataclass
class ObjectViews:
    """One object of the run: its input view, ground-truth views and each kept variant's generated views."""

    prompt_id: int
    name: str
    input_view: Image.Image
    ground_truth: list[Image.Image]
    frames: list[int]
    generated: dict[str, list[Image.Image]]
    stability: dict[str, float]
    seeds: dict[str, int]


@dataclass
class Table3Result:
    out_dir: Path
    table: pd.DataFrame
    per_object: pd.DataFrame
    per_view: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def markdown(self) -> Path:
        return self.files["table3_md"]


def load_objects(run_dir: Path) -> list[ObjectViews]:
    """The finished objects of a run folder, with their views cut from the saved strips."""
    run_dir = Path(run_dir)
    objects = []
    for record in RunStore(run_dir).records():
        meta = record.get("meta") or {}
        if "views" not in meta or "image" not in meta:
            raise NoiseExpError(f"prompt {record['prompt_id']} of {run_dir} has no ground-truth views in its meta; "
                                f"Table 3 needs an orbit dataset (dataset=omniobject3d)")
        variants = [v for v in record["variants"] if v["image"]]
        generated = {v["variant"]: split_strip(open_image(run_dir / v["image"]), len(meta["views"])) for v in variants}
        size = next(iter(generated.values()))[0].size[0] if generated else 256
        objects.append(ObjectViews(
            prompt_id=int(record["prompt_id"]), name=str(meta.get("object", record["prompt"])),
            input_view=prepare_view(open_image(meta["image"]), size),
            ground_truth=[prepare_view(open_image(path), size) for path in meta["views"]],
            frames=list(meta.get("view_frames", range(len(meta["views"])))), generated=generated,
            stability={v["variant"]: float(v["stability"]) for v in record["variants"]},
            seeds={v["variant"]: int(v["seed"]) for v in record["variants"]}))
    return objects


def score_views(objects: Sequence[ObjectViews], evaluators: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (object, variant, view) with one column per evaluator (generated view vs its ground truth)."""
    rows = []
    for obj in objects:
        for variant, views in obj.generated.items():
            scores = {name: evaluator.score(views, prompts=[obj.name] * len(views), references=obj.ground_truth)
                      for name, evaluator in evaluators.items()}
            for name, values in scores.items():
                if tuple(values.shape) != (len(views),):
                    raise NoiseExpError(f"evaluator {name} returned shape {tuple(values.shape)} for {len(views)} views")
            rows += [{"prompt_id": obj.prompt_id, "object": obj.name, "variant": variant, "view": i,
                      "frame": obj.frames[i], **{name: float(values[i]) for name, values in scores.items()}}
                     for i in range(len(views))]
    return pd.DataFrame(rows, columns=["prompt_id", "object", "variant", "view", "frame", *evaluators])


def object_means(objects: Sequence[ObjectViews], per_view: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean of each metric over an object's views, with the variant's seed and stability."""
    keys = ["prompt_id", "object", "variant"]
    means = per_view.groupby(keys, sort=False)[list(metrics)].mean().reset_index() if metrics else (
        per_view[keys].drop_duplicates())
    facts = pd.DataFrame([{"prompt_id": o.prompt_id, "variant": v, "seed": o.seeds[v], "stability": o.stability[v]}
                          for o in objects for v in o.generated])
    merged = facts.merge(means, on=["prompt_id", "variant"], how="left")
    return merged[["prompt_id", "object", "variant", "seed", "stability", *metrics]]


def table3(per_object: pd.DataFrame, metrics: Sequence[str], model: str,
           lower: AbstractSet[str] = LEGACY_LOWER_IS_BETTER) -> pd.DataFrame:
    """Means over objects per variant, in the paper's layout: Model | Noise | LPIPS ↓ | SSIM | CLIP-S | ... (a metric
    in `lower`, its evaluator's `higher_is_better` false, marked ↓, the others ↑)."""
    order = {v: i for i, v in enumerate(variant_order())}
    labels = variant_labels(paper=True)
    grouped = per_object.groupby("variant", sort=False)
    variants = sorted(grouped.groups, key=lambda v: order.get(v, len(order)))
    rows = []
    for variant in variants:
        group = grouped.get_group(variant)
        row = {"Model": model, "Noise": labels.get(variant, variant)}
        for metric in metrics:
            label = METRIC_LABELS.get(metric, metric) + (" ↓" if metric in lower else " ↑")
            row[label] = float(group[metric].mean())
        row["Stability ↑"] = float(group["stability"].mean())
        row["Objects"] = int(len(group))
        rows.append(row)
    return pd.DataFrame(rows)


def _label(text: str, size: tuple[int, int]) -> Image.Image:
    cell = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(cell).text((2, size[1] // 2 - 5), text, fill=(0, 0, 0))
    return cell


def turntable_strip(obj: ObjectViews) -> Image.Image:
    """Rows: ground truth, then each generated variant; each row is label | input view | views."""
    size = obj.input_view.size
    order = {v: i for i, v in enumerate(variant_order())}
    rows = [("ground truth", obj.ground_truth)] + sorted(obj.generated.items(), key=lambda item: order.get(item[0], 99))
    return stack_rows([horizontal_strip([_label(name, size), obj.input_view, *views])
                       for name, views in rows])


@dataclass
class OrbitReport:
    """The post-run report of an orbit dataset (the runner calls it with the configured evaluators)."""

    out_subdir: str = "table3"
    model_label: str | None = None  # the Model column; default: the run's model name
    write_strips: bool = True

    def __call__(self, run_dir: Path, evaluators: Mapping[str, Any] | None = None,
                 model_name: str = "model") -> Table3Result:
        run_dir = Path(run_dir)
        evaluators = dict(evaluators or {})
        out_dir = run_dir / self.out_subdir
        objects = load_objects(run_dir)
        if not objects:
            raise NoiseExpError(f"{run_dir} has no finished objects to report")
        metrics = [m for m in PAPER_METRICS if m in evaluators] + [m for m in evaluators if m not in PAPER_METRICS]
        per_view = score_views(objects, {m: evaluators[m] for m in metrics})
        per_object = object_means(objects, per_view, metrics)
        directions = evaluator_directions({m: evaluators[m] for m in metrics})
        table = table3(per_object, metrics, self.model_label or model_name,
                       {metric for metric, higher in directions.items() if not higher})
        record_directions(run_dir, directions)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {"per_view_csv": out_dir / "per_view.csv", "per_object_csv": out_dir / "per_object.csv",
                 "table3_csv": out_dir / "table3.csv", "table3_md": out_dir / "table3.md"}
        per_view.to_csv(files["per_view_csv"], index=False)
        per_object.to_csv(files["per_object_csv"], index=False)
        table.to_csv(files["table3_csv"], index=False)
        files["table3_md"].write_text(to_markdown(table))
        if self.write_strips:
            (out_dir / "strips").mkdir(exist_ok=True)
            for obj in objects:
                path = out_dir / "strips" / f"{obj.prompt_id}.png"
                turntable_strip(obj).save(path)
                files[f"strip_{obj.prompt_id}"] = path
        return Table3Result(out_dir, table, per_object, per_view, files)
