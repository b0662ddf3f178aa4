"""`python -m noise_exp.bank decompose|prior`: the seed's share of s(eps) and the seed prior, from a bank's
prompts x seeds table (docs/seed_share.md)."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes
from noise_exp.params import integer_param

SEED_COMMANDS = ("decompose", "prior")


def add_seed_commands(commands) -> None:
    """Register the two subcommands on the bank CLI's subparsers."""
    texts = {"decompose": "shares of var(s) from seed, prompt and the rest, with bootstrap intervals",
             "prior": "each seed's mean stability over the bank's prompts, for method.proxy=prior:<file>"}
    for name in SEED_COMMANDS:
        command = commands.add_parser(name, help=texts[name], description=texts[name])
        command.add_argument("source", type=Path, help="a bank folder, or a run folder made with bank.path=...")
        command.add_argument("--k", type=int, default=None, help="use each prompt's first K candidates (seed order)")
        command.add_argument("--scope", default=None, help="a bank's scope digest (prefix) when it holds several")
        command.add_argument("--bank", type=Path, default=None, help="the bank of a run folder, if moved")
        command.add_argument("--similarity", default="cosine", help="the s: cosine (paper), pearson or neg_rmse")
    decompose = commands.choices["decompose"]
    decompose.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws (default 1000)")
    decompose.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    decompose.add_argument("--out", type=Path, default=None, help="output folder (default <source>/bank_decompose)")
    commands.choices["prior"].add_argument("--out", type=Path, required=True, help="the prior file to write (JSON)")


def run_seed_command(args: argparse.Namespace) -> int:
    from noise_exp.bank.queries import load_candidates
    from noise_exp.bank.seed_table import seed_prior, seed_table
    from noise_exp.candidates.seed_prior import write_prior

    if args.k is not None:
        integer_param("--k", args.k, 2)
    if args.command == "decompose":  # every argument before any candidate is read
        integer_param("--bootstrap", args.bootstrap, 1)
    candidates = load_candidates(args.source, args.scope, args.bank).first(args.k)
    table = seed_table(candidates, args.similarity)
    if args.command == "prior":
        prior = seed_prior(table, candidates.scope, args.similarity, str(args.source))
        write_prior(prior, args.out)
        print(f"seed prior of {len(prior.seeds)} seeds over {len(prior.prompts)} prompts ({args.similarity}; "
              f"{prior.nfe:.0f} NFEs to measure) written to {args.out}")
        return 0
    if len(table.prompts) < 2:
        raise NoiseExpError(f"{args.source} holds one prompt; a decomposition needs at least 2")
    from noise_exp.bank.decompose import decompose

    result = decompose(table.values, args.bootstrap, args.seed)
    out = args.out or args.source / "bank_decompose"
    text = decomposition_markdown(result, args.similarity)
    atomic_write_bytes(out / "decomposition.json", (json.dumps(
        {"scope": candidates.scope.settings, "similarity": args.similarity, **asdict(result)}, indent=1,
        default=str) + "\n").encode("utf-8"))
    atomic_write_bytes(out / "decomposition.md", text.encode("utf-8"))
    print(text)
    print(f"written: {out / 'decomposition.md'}")
    return 0


def decomposition_markdown(result, similarity: str) -> str:
    return "\n".join([
        f"{result.prompts} prompts x {result.seeds} seeds, s = {similarity} (mean {result.mean:.4f}, std "
        f"{result.std:.4f}); 95% intervals: {result.draws} bootstrap draws over prompts and seeds", "",
        "| share of var(s): seed | prompt | interaction / rest | mean Spearman of two prompts' seed rankings |",
        "|---|---|---|---|",
        f"| {result.seed:.2f} | {result.prompt:.2f} | {result.rest:.2f} | {result.spearman:.2f} |", ""])
