"""`make compare`: the equal-compute comparison of noise methods, run and reported (docs/compare_methods.md).

Loads the model once to count the NFEs of one generation (G) and one round trip (R), sets every method's settings
per rung of the budget ladder from its `at_budget` (each registered method that has one, unless --methods), runs
`experiment=compare_methods` as one Hydra multirun (methods x rungs, one torch thread), then writes the table and
the quality-vs-NFE plot; with `--doc` the table goes into that Markdown file between its `<!-- compare:begin -->` /
`<!-- compare:end -->` markers.

    python scripts/compare_methods.py                                     # small_shapes, shapes_reward vs the judge
    python scripts/compare_methods.py --model small_digits --dataset digits --verifier digit_classifier \\
        --judge digit_realism --methods random,select,optimize,best_of_n  # digit scorers are not differentiable
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noise_exp.cli import ArgumentParser  # noqa: E402
from noise_exp.errors import NoiseExpError, exit_on_user_error  # noqa: E402
from noise_exp.files import atomic_write_bytes, writable_file, writable_folder  # noqa: E402
from noise_exp.params import integer_param  # noqa: E402

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def model_costs(overrides: list[str]) -> tuple[int, int, int]:
    """(G, R, d): NFEs of one generation and of one round trip, and the latent size, of the configured model."""
    import torch
    from hydra.utils import instantiate

    from noise_exp.config import compose_config
    from noise_exp.methods.differentiable import generation_nfe

    torch.set_num_threads(1)
    cfg = compose_config(["experiment=compare_methods", *overrides])
    model = instantiate(cfg.model)
    cond = model.encode_prompt("")
    return generation_nfe(model, cond), model.unet_calls_per_roundtrip, int(model.draw_noise([0]).numel())


def sweep_command(args, costs: tuple[int, int, int], conf_dir: Path) -> list[str]:
    """run.py -m of the study's jobs; each method's compare_method yaml is written to `conf_dir` (Hydra's search
    path: conf/compare_method's own copies come first)."""
    from noise_exp.methods.registry import REGISTRY, compare_classes
    from noise_exp.report.compare import ladder_budgets, study_overrides

    classes = compare_classes()
    if args.methods:
        names = args.methods.split(",")
        unknown = [name for name in names if name not in {cls.name for cls in classes}]
        if unknown:
            raise NoiseExpError(f"--methods: {', '.join(unknown)} has no at_budget (the study's methods: "
                                f"{', '.join(cls.name for cls in classes)})")
        classes = [REGISTRY[name] for name in names]
    budgets = ladder_budgets(args.ladder, *costs, args.verifier)
    return [sys.executable, str(ROOT / "run.py"), "-m", "experiment=compare_methods", f"model={args.model}",
            f"dataset={args.dataset}", f"dataset.limit={args.prompts}", f"evaluator=[{args.verifier},{args.judge}]",
            f"compare.verifier={args.verifier}", f"compare.held_out=[{args.judge}]",
            *study_overrides(budgets, conf_dir, classes), f"hydra.searchpath=[file://{conf_dir}]",
            f"hydra.sweep.dir={args.out}"]


def write_doc(doc: Path, figure: Path, markdown: str, command: str, seconds: float, costs: tuple[int, int, int]) -> None:
    """Replace the measured block of `doc` (between the markers) and copy the plot next to it."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise NoiseExpError(f"{doc} has no {BEGIN} ... {END} block to write the table into")
    generation, roundtrip, dim = costs
    block = (f"{BEGIN}\nMeasured by `{command}` in {seconds / 60:.1f} min (G = {generation} NFEs per generation, "
             f"R = {roundtrip} per round trip, d = {dim}).\n\n{markdown}\n![quality vs NFEs]({figure.name})\n{END}")
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    atomic_write_bytes(doc, text.encode("utf-8"))


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="scripts/compare_methods.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_shapes")
    parser.add_argument("--dataset", default="shapes_bench")
    parser.add_argument("--prompts", type=int, default=24, help="the dataset's first prompts (shapes_bench: tags in turn)")
    parser.add_argument("--verifier", default="shapes_reward", help="the scorer best_of_n and reward_opt see")
    parser.add_argument("--judge", default="shapes_geneval", help="the held-out scorer no method sees")
    parser.add_argument("--ladder", type=lambda s: [int(v) for v in s.split(",")], default=[1, 4, 16],
                        help="budgets in generations, comma-separated")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every method with an at_budget)")
    parser.add_argument("--out", type=Path, default=ROOT / "multirun" / "compare_methods")
    parser.add_argument("--doc", type=Path, default=None, help="Markdown file whose measured block gets the table")
    args = parser.parse_args(argv)
    integer_param("--prompts", args.prompts, 1)
    writable_folder(args.out, "--out")
    if args.doc is not None:
        writable_file(args.doc, "--doc")
    if args.verifier == args.judge:
        raise NoiseExpError(f"--verifier and --judge are both {args.judge}: the judge must stay held out")
    from noise_exp.report.compare import write_compare

    costs = model_costs([f"model={args.model}"])
    with tempfile.TemporaryDirectory(prefix="compare_conf_") as conf_dir:
        command = sweep_command(args, costs, Path(conf_dir))
        print(" ".join(command), flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        seconds = time.perf_counter() - start
    if done.returncode:
        raise NoiseExpError(f"the sweep failed (exit {done.returncode}); see its run.log files under {args.out}")
    result = write_compare(args.out)
    print(result.markdown + f"\nsweep: {seconds:.0f}s\ntable: {result.files['md']}\nplot: {result.files['png']}")
    if args.doc:
        figure = args.doc.with_suffix(".png")
        shutil.copyfile(result.files["png"], figure)
        shown = " ".join(["python scripts/compare_methods.py", *(argv if argv is not None else sys.argv[1:])])
        write_doc(args.doc, figure, result.markdown, shown, seconds, costs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
