"""`python -m noise_exp.bank {select,correlate,info,decompose,prior} <bank or run> ...`: selection rules and the stability-quality
correlation answered from stored candidates, with no candidate recomputed (docs/candidate_bank.md).

  select    <bank|run> --by RULE [--by RULE ...] [--k K] [--out DIR]: a run folder of the rules' picks for
            `python -m noise_exp.report`; RULE: stability, unstable, random, <evaluator>, oracle:<evaluator>
  correlate <bank|run> --scores EVAL[,EVAL] [--similarities cosine,pearson,neg_rmse] [--out DIR]: per-prompt and
            pooled Spearman/Kendall with bootstrap intervals, gain of argmax s over random, scatter plot
  info      <bank>: its files, scopes and candidates
  decompose <bank|run> [--similarity S] [--bootstrap N] [--out DIR]: shares of var(s) from seed, prompt and the rest
  prior     <bank|run> --out FILE: each seed's mean s over the prompts, for method.proxy=prior:FILE

A run folder (made with bank.path=...) stands for exactly its prompts and the seeds it selected among; a bank folder
for all its candidates of one scope (--scope when it holds several), one prompt per prompt text.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from noise_exp.bank.seed_commands import SEED_COMMANDS, add_seed_commands, run_seed_command
from noise_exp.cli import ArgumentParser
from noise_exp.errors import exit_on_user_error


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m noise_exp.bank", description=__doc__.split("\n\n", 1)[0],
                            epilog=__doc__.split("\n\n", 1)[1], formatter_class=_raw())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for name, text in (("select", "write a run folder of selection rules' picks"),
                       ("correlate", "the stability-quality correlation table and scatter plot")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("source", type=Path, help="a bank folder, or a run folder made with bank.path=...")
        command.add_argument("--k", type=int, default=None, help="use each prompt's first K candidates (seed order)")
        command.add_argument("--scope", default=None, help="a bank's scope digest (prefix) when it holds several")
        command.add_argument("--bank", type=Path, default=None, help="the bank of a run folder, if moved")
        command.add_argument("--seed", type=int, default=0, help="random picks / bootstrap draws (default 0)")
        command.add_argument("--out", type=Path, default=None, help=f"output folder (default <source>/bank_{name})")
    select, correlate = commands.choices["select"], commands.choices["correlate"]
    select.add_argument("--by", action="append", required=True, metavar="RULE",
                        help="stability | unstable | random | <evaluator> | oracle:<evaluator>; repeat for several")
    select.add_argument("--similarity", default="cosine", help="the s of stability/unstable (cosine, pearson, neg_rmse)")
    select.add_argument("--images", default="auto", help="auto (the bank's if all kept, else regenerate the chosen "
                                                         "seeds) | bank | regenerate | none")
    correlate.add_argument("--scores", required=True, help="evaluators, comma-separated (e.g. digit_classifier,aes)")
    correlate.add_argument("--similarities", default="cosine,pearson,neg_rmse", help="comma-separated")
    correlate.add_argument("--bootstrap", type=int, default=2000, help="bootstrap draws over prompts (default 2000)")
    info = commands.add_parser("info", help="files, scopes and candidates of a bank", description="bank contents")
    info.add_argument("source", type=Path, help="a bank folder")
    add_seed_commands(commands)
    return parser


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        return _info(args.source)
    if args.command in SEED_COMMANDS:
        return run_seed_command(args)
    from noise_exp.bank.queries import load_candidates

    out = args.out or args.source / f"bank_{args.command}"
    rules = _checked_args(args, out)  # every argument, before any candidate is read
    candidates = load_candidates(args.source, args.scope, args.bank).first(args.k)
    if args.command == "select":
        from noise_exp.bank.select_run import write_select_run

        run_dir, images = write_select_run(candidates, rules, out, args.similarity, args.seed, args.images)
        print((run_dir / "report" / "means.md").read_text())
        print(f"{len(candidates.prompts)} prompts x {len(rules)} rules from the bank (images: {images}); "
              f"run folder: {run_dir}")
        return 0
    from noise_exp.bank.correlation import correlate, markdown, write_correlation

    result = correlate(candidates, _items(args.scores), _items(args.similarities), args.bootstrap, args.seed)
    files = write_correlation(result, out)
    print(markdown(result))
    print(f"written: {files['table_md']}, {files['scatter_png'].name}")
    return 0


def _checked_args(args, out: Path) -> list:
    """The select/correlate arguments checked in one line each (select's rules parsed); raises NoiseExpError."""
    from noise_exp.candidates.rules import SIMILARITY_NAMES, parse_rule
    from noise_exp.errors import NoiseExpError
    from noise_exp.params import integer_param

    for flag, value, least in (("--k", args.k, 1), ("--seed", args.seed, 0),
                               ("--bootstrap", getattr(args, "bootstrap", None), 1)):
        if value is not None:
            integer_param(flag, value, least)
    if args.command == "correlate":
        from noise_exp.files import writable_folder

        writable_folder(out, "--out")
        unknown = [name for name in _items(args.similarities) if name not in SIMILARITY_NAMES]
        if unknown or not _items(args.similarities):
            raise NoiseExpError(f"--similarities {args.similarities!r}: choose among {', '.join(SIMILARITY_NAMES)}")
        if not _items(args.scores):
            raise NoiseExpError("--scores names no evaluator")
        return []
    from noise_exp.bank.select_run import check_out, check_images

    check_images(args.images)
    check_out(out)
    rules = [parse_rule(text, args.similarity) for text in args.by]
    if len({r.variant for r in rules}) < len(rules):
        raise NoiseExpError("--by names a rule twice")
    return rules


def _info(path: Path) -> int:
    from noise_exp.candidates.storage import CandidateBank

    bank = CandidateBank(path)
    contents = bank.read()
    print(f"{bank.path}: {len(bank.files())} files, {len(contents.frame)} candidates "
          f"({contents.merged_duplicates} duplicate rows merged, {len(contents.skipped)} files skipped)")
    for digest, rows in contents.frame.groupby("scope", sort=False):
        scope = contents.scopes.get(digest)
        print(f"  scope {digest}: {len(rows)} candidates, {rows['prompt'].nunique()} prompts, scores: "
              f"{', '.join(contents.score_names(rows)) or 'none'}\n    {scope.describe() if scope else '?'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
