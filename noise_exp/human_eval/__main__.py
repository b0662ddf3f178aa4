"""`python -m noise_exp.human_eval {serve,export,analyze,audit} <run or sweep folder>`."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from urllib.parse import quote

from noise_exp.cli import ArgumentParser
from noise_exp.errors import NoiseExpError, exit_on_user_error

TOKEN_ENV = "NOISE_EXP_HUMAN_EVAL_TOKEN"


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m noise_exp.human_eval", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the pairwise preference page for a run or sweep folder")
    serve.add_argument("folder", type=Path)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"shared token every annotator's URL must carry; required off loopback (or set ${TOKEN_ENV})",
    )
    serve.add_argument(
        "--comparisons",
        default=None,
        help="A:B list, winning rate is A's (default: stable:unstable,optimized:original,"
        "stable:baseline,optimized:baseline, those present)",
    )

    export = commands.add_parser("export", help="write the votes (or, with --labels, the labels) as CSV")
    export.add_argument("folder", type=Path)
    export.add_argument("--out", type=Path, default=None,
                        help="default <folder>/human_votes.csv (--labels: <folder>/human_labels.csv)")
    export.add_argument("--labels", action="store_true", help="export the correctness labels instead of the votes")

    audit = commands.add_parser("audit", help="compare an evaluator's scores with the correctness labels")
    audit.add_argument("folder", type=Path)
    audit.add_argument("--evaluator", required=True, help="the results.csv column to audit, e.g. shapes_geneval")
    audit.add_argument("--threshold", type=float, default=0.5, help="score >= threshold means correct (default 0.5)")
    audit.add_argument("--labels", type=Path, default=None,
                       help="labels CSV (as export --labels writes) instead of the folder's database")
    audit.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")

    analyze = commands.add_parser("analyze", help="print the human preference section of the report")
    analyze.add_argument("folder", type=Path)
    analyze.add_argument(
        "--csv", nargs="?", type=Path, const=True, default=None,
        help="also write the rates as CSV (default path <folder>/human_winning_rates.csv)",
    )
    return parser


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from noise_exp.human_eval.app import is_loopback
    from noise_exp.human_eval.label_app import build_app
    from noise_exp.human_eval.pairs import parse_comparisons

    if not is_loopback(args.host) and not args.token:
        raise NoiseExpError(f"binding to {args.host} exposes the page beyond this machine: pass --token <shared secret>")
    if args.token is not None and len(args.token) < 8:
        raise NoiseExpError("--token must be at least 8 characters")
    app, pair_set, items, store = build_app(args.folder, parse_comparisons(args.comparisons), token=args.token)
    query = f"?token={quote(args.token)}" if args.token else ""
    print(f"{len(pair_set.pairs)} pairs from {pair_set.root} ({len(pair_set.skipped)} skipped), {len(items)} images "
          f"to label; votes and labels in {store.path}")
    print(f"open http://{args.host}:{args.port}/{query} (pairs) or http://{args.host}:{args.port}/label{query} "
          "(is each image right?)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def _export(args: argparse.Namespace) -> None:
    from noise_exp.report.human import load_votes

    if args.labels:
        from noise_exp.human_eval.audit import export_labels

        out = args.out if args.out is not None else Path(args.folder) / "human_labels.csv"
        print(f"{export_labels(args.folder, out)} labels -> {out}")
        return

    votes, database = load_votes(args.folder)
    if database is None:
        raise NoiseExpError(f"no votes database for {args.folder}: serve it first")
    out = args.out if args.out is not None else Path(args.folder) / "human_votes.csv"
    votes.to_csv(out, index=False)
    print(f"{len(votes)} votes from {database} -> {out}")


def _analyze(args: argparse.Namespace) -> None:
    from noise_exp.report.human import human_report_markdown, write_human_winning_rates_csv

    print(human_report_markdown(args.folder), end="")
    if args.csv is not None:
        out = write_human_winning_rates_csv(args.folder, None if args.csv is True else args.csv)
        print(f"\nwrote {out}")


def _audit(args: argparse.Namespace) -> None:
    from noise_exp.files import atomic_write_bytes
    from noise_exp.human_eval.audit import audit, audit_markdown

    report = audit_markdown(audit(args.folder, args.evaluator, args.threshold, args.labels))
    print(report, end="")
    if args.out is not None:
        atomic_write_bytes(args.out, report.encode("utf-8"))
        print(f"\nwrote {args.out}")


def _check_args(args: argparse.Namespace) -> None:
    """The port and output files, checked before any work (one line each)."""
    from noise_exp.files import writable_file

    if args.command == "serve" and not 1 <= args.port <= 65535:
        raise NoiseExpError(f"--port must be in 1..65535, got {args.port}")
    if args.command == "audit" and not math.isfinite(args.threshold):
        raise NoiseExpError(f"--threshold must be a finite number, got {args.threshold}")
    out = {"export": getattr(args, "out", None), "analyze": getattr(args, "csv", None),
           "audit": getattr(args, "out", None)}.get(args.command)
    if isinstance(out, Path):
        writable_file(out, "--csv" if args.command == "analyze" else "--out")


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not Path(args.folder).is_dir():
        raise NoiseExpError(f"{args.folder} is not a folder")
    _check_args(args)
    {"serve": _serve, "export": _export, "analyze": _analyze, "audit": _audit}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
