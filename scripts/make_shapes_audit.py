"""Build the shapes judge's audit set (docs/shapes_world.md, "The judge audited") from bank-select pick folders.

The picks come from the project's own runs, one per model (K = 8 seeds per prompt, fresh seeds per prompt):

    python run.py model=small_shapes dataset=shapes_bench dataset.limit=48 method=select method.num_seeds=8 \\
        method.seeds_per_prompt=true method.score_candidates=true "evaluator=[shapes_geneval,shapes_reward]" \\
        bank.path=/tmp/audit/bank_small_shapes hydra.run.dir=/tmp/audit/run_small_shapes
    python -m noise_exp.bank select /tmp/audit/run_small_shapes --by stability --by unstable --by random \\
        --by shapes_reward --out /tmp/audit/picks_small_shapes
    (the same for small_shapes_l)
    python scripts/make_shapes_audit.py build /tmp/audit/picks_small_shapes /tmp/audit/picks_small_shapes_l

`build` keeps each distinct image once (a seed picked by several rules is one row; `picked_by` lists the rules,
`variant` is the first of stable, unstable, best_shapes_reward, random that picked it) and copies the PNGs.
`shapes_geneval_before` is the judge's score when the images were generated. `rescore` writes the current judge's
score as `shapes_geneval`. `bias` prints stable minus unstable accuracy by the labels and by both judge
columns. `sheets` draws numbered contact sheets (nearest-neighbour upscaled, prompt printed, no
variant and no score shown) in an annotator's labelling order, for labelling by eye.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from noise_exp.errors import NoiseExpError, exit_on_user_error  # noqa: E402
from noise_exp.rundir.results import RESULTS_FILE, read_results, write_results  # noqa: E402

AUDIT = REPO / "datasets" / "shapes_audit"
RULES = ("stable", "unstable", "best_shapes_reward", "random")
COLUMNS = ["dataset", "prompt_id", "prompt", "variant", "picked_by", "seed", "stability", "image",
           "shapes_geneval_before", "shapes_reward"]


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


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build")
    build_cmd.add_argument("picks", nargs="+", type=Path)
    build_cmd.add_argument("--out", type=Path, default=AUDIT)
    rescore_cmd = commands.add_parser("rescore")
    rescore_cmd.add_argument("--out", type=Path, default=AUDIT)
    sheets_cmd = commands.add_parser("sheets")
    sheets_cmd.add_argument("dest", type=Path)
    sheets_cmd.add_argument("--annotator", default="claude")
    sheets_cmd.add_argument("--out", type=Path, default=AUDIT)
    bias_cmd = commands.add_parser("bias", help="stable minus unstable accuracy by the labels and by the judge")
    bias_cmd.add_argument("--out", type=Path, default=AUDIT)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.picks, args.out)
    elif args.command == "rescore":
        rescore(args.out)
    elif args.command == "bias":
        stable_vs_unstable(args.out, args.out / "labels.csv")
    else:
        sheets(args.out, args.annotator, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
