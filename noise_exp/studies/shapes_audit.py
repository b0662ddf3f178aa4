"""Build the shapes judge's audit set (docs/shapes_world.md, "The judge audited") from bank-select pick folders.

The picks come from the project's own runs, one per model (K = 8 seeds per prompt, fresh seeds per prompt):

    python run.py model=small_shapes dataset=shapes_bench dataset.limit=48 method=select method.num_seeds=8 \\
        method.seeds_per_prompt=true method.score_candidates=true "evaluator=[shapes_geneval,shapes_reward]" \\
        bank.path=/tmp/audit/bank_small_shapes hydra.run.dir=/tmp/audit/run_small_shapes
    python -m noise_exp.bank select /tmp/audit/run_small_shapes --by stability --by unstable --by random \\
        --by shapes_reward --out /tmp/audit/picks_small_shapes
    (the same for small_shapes_l)
    python -m noise_exp.studies shapes_audit step=build picks=[/tmp/audit/picks_small_shapes,/tmp/audit/picks_small_shapes_l]

Knobs and their values: conf/study/shapes_audit.yaml (`step`: build, rescore, sheets or bias; `out`: the audit set).
`build` keeps each distinct image once (a seed picked by several rules is one row; `picked_by` lists the rules,
`variant` is the first of stable, unstable, best_shapes_reward, random that picked it) and copies the PNGs.
`shapes_geneval_before` is the judge's score when the images were generated. `rescore` writes the current judge's
score as `shapes_geneval`. `bias` prints stable minus unstable accuracy by the labels and by both judge
columns. `sheets` draws numbered contact sheets (nearest-neighbour upscaled, prompt printed, no
variant and no score shown) into `dest` in `annotator`'s labelling order, for labelling by eye.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from PIL import Image, ImageDraw

from noise_exp.errors import NoiseExpError
from noise_exp.rundir.results import RESULTS_FILE, read_results, write_results
from noise_exp.studies.common import project_path

STEPS = ("build", "rescore", "sheets", "bias")
RULES = ("stable", "unstable", "best_shapes_reward", "random")
COLUMNS = ["dataset", "prompt_id", "prompt", "variant", "picked_by", "seed", "stability", "image",
           "shapes_geneval_before", "shapes_reward"]


@dataclass
class Config:
    """conf/study/shapes_audit.yaml."""

    step: str  # build, rescore, sheets or bias
    picks: list[Path]  # build: the bank-select pick folders, picks_<model>
    out: Path  # the audit set (relative: under the repository root)
    dest: Optional[Path]  # sheets: where the contact sheets go
    annotator: str  # sheets: whose labelling order


def build(picks: list[Path], out: Path) -> None:
    for folder in picks:
        frame = read_results(folder)
        model = folder.name.removeprefix("picks_")  # picks_<model>, as in the commands above
        frame["rank"] = frame["variant"].map({rule: i for i, rule in enumerate(RULES)})
        if frame["rank"].isna().any():
            raise NoiseExpError(f"{folder}: unexpected variants {sorted(set(frame['variant']) - set(RULES))}")
        frame = frame.sort_values(["prompt_id", "rank"])
        picked = frame.groupby(["prompt_id", "seed"], sort=False)["variant"].agg("+".join).rename("picked_by")
        rows = frame.drop_duplicates(["prompt_id", "seed"]).join(picked, on=["prompt_id", "seed"])
        target = out / model
        (target / "images").mkdir(parents=True, exist_ok=True)
        images = []
        for row in rows.itertuples(index=False):
            name = f"images/{row.prompt_id}_{row.seed}.png"
            shutil.copyfile(folder / row.image, target / name)
            images.append(name)
        rows = rows.assign(image=images, shapes_geneval_before=rows["shapes_geneval"])
        write_results(rows[COLUMNS], target)
        print(f"{model}: {len(rows)} distinct images of {len(frame)} picks -> {target}")


def rescore(out: Path) -> None:
    from noise_exp.evaluators.shapes import ShapesGenEval

    found = sorted(out.glob(f"*/{RESULTS_FILE}"))
    if not found:
        raise NoiseExpError(f"no <model>/{RESULTS_FILE} under {out}: build the audit set first")
    judge = ShapesGenEval()
    for results in found:
        frame = read_results(results.parent)
        images = [Image.open(results.parent / path).convert("RGB") for path in frame["image"]]
        frame["shapes_geneval"] = judge.score(images, list(frame["prompt"])).numpy()
        write_results(frame, results.parent)
        changed = int((frame["shapes_geneval"] != frame["shapes_geneval_before"]).sum())
        print(f"{results}: mean {frame['shapes_geneval'].mean():.3f} (before {frame['shapes_geneval_before'].mean():.3f}),"
              f" {changed} verdicts changed")


def sheets(out: Path, annotator: str, dest: Path, per_sheet: int = 16, tile: int = 128) -> None:
    from noise_exp.human_eval.labels import build_items, labelling_order

    _, items, _ = build_items(out)
    items = labelling_order(annotator, items)
    dest.mkdir(parents=True, exist_ok=True)
    index = []
    columns, label_height = 4, 30
    for start in range(0, len(items), per_sheet):
        chunk = items[start:start + per_sheet]
        rows = -(-len(chunk) // columns)
        sheet = Image.new("RGB", (columns * (tile + 8), rows * (tile + label_height + 8)), (128, 128, 128))
        draw = ImageDraw.Draw(sheet)
        for offset, item in enumerate(chunk):
            number = start + offset
            x, y = (offset % columns) * (tile + 8) + 4, (offset // columns) * (tile + label_height + 8) + 4
            sheet.paste(Image.open(item.image).convert("RGB").resize((tile, tile), Image.NEAREST), (x, y))
            words = f"{number}: {item.prompt}"
            draw.text((x, y + tile + 2), words[:22], fill=(0, 0, 0))
            draw.text((x, y + tile + 14), words[22:44], fill=(0, 0, 0))
            index.append({"number": number, "item_id": item.item_id, "prompt": item.prompt})
        sheet.save(dest / f"sheet_{start // per_sheet:02d}.png")
    pd.DataFrame(index).to_csv(dest / "index.csv", index=False)
    print(f"{len(items)} images on {-(-len(items) // per_sheet)} sheets -> {dest}")


def stable_vs_unstable(out: Path, labels_csv: Path) -> None:
    """Stable minus unstable accuracy per model, by the labels and by each judge column, on the prompts where both
    picks have a yes/no label: the bias a judge's errors would put into the paper's comparison."""
    from noise_exp.human_eval.audit import majority_labels

    decided = majority_labels(pd.read_csv(labels_csv))
    for results in sorted(out.glob(f"*/{RESULTS_FILE}")):
        frame = read_results(results.parent)
        frame["human"] = (results.parent.name + "/" + frame["dataset"] + "/" + frame["prompt_id"].astype(str) + "/"
                          + frame["variant"]).map(decided)
        picks = {rule: frame[frame["picked_by"].str.split("+").apply(lambda rules: rule in rules)].set_index("prompt_id")
                 for rule in ("stable", "unstable")}
        prompts = [p for p in picks["stable"].index if p in picks["unstable"].index
                   and pd.notna(picks["stable"].loc[p, "human"]) and pd.notna(picks["unstable"].loc[p, "human"])]
        parts = []
        for column in ("human", "shapes_geneval_before", "shapes_geneval"):
            stable = picks["stable"].loc[prompts, column].astype(float).mean()
            unstable = picks["unstable"].loc[prompts, column].astype(float).mean()
            parts.append(f"{column} {stable:.3f} - {unstable:.3f} = {stable - unstable:+.3f}")
        print(f"{results.parent.name} ({len(prompts)} prompts, stable - unstable): " + "; ".join(parts))


def run(config: Config, command: str) -> int:
    """One step of building or reading the audit set."""
    if config.step not in STEPS:
        raise NoiseExpError(f"step {config.step!r}: choose among {', '.join(STEPS)}")
    out = project_path(config.out)
    if config.step == "build":
        if not config.picks:
            raise NoiseExpError("step=build needs picks=[<pick folder>,...]")
        build(config.picks, out)
    elif config.step == "rescore":
        rescore(out)
    elif config.step == "bias":
        stable_vs_unstable(out, out / "labels.csv")
    else:
        if config.dest is None:
            raise NoiseExpError("step=sheets needs dest=<folder>")
        sheets(out, config.annotator, config.dest)
    return 0
