"""The bank's selection rules by name: which variant each `--by` rule writes (`stable`, `unstable`, `random`,
`best_<score>`, `oracle_<score>`), which candidate column it keeps the argmax of, its row label and the comparisons
a bank query's report shows. The queries themselves are noise_exp.bank.queries; the report reads the names here to
compare the picks of a query folder written before method.json existed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from noise_exp.candidates.storage import SCORE_PREFIX, STABILITY_PREFIX
from noise_exp.errors import NoiseExpError

SIMILARITY_NAMES = ("cosine", "pearson", "neg_rmse")
# what running a rule from scratch costs per prompt: K round trips (Algorithm 1), one denoising pass (a random
# seed), or K denoising passes, decodes and scorings (best of K by a score)
ROUNDTRIPS, ONE_DENOISE, SCORED = "roundtrips", "one_denoise", "scored"


@dataclass(frozen=True)
class Rule:
    """A selection rule: the variant it writes and the bank column whose argmax it keeps (None: a random pick)."""

    variant: str
    column: str | None
    sign: float = 1.0  # -1: the argmin (the paper's unstable noise)
    cost: str = ROUNDTRIPS


def parse_rule(text: str, similarity: str = "cosine") -> Rule:
    """`stability` (argmax s, Algorithm 1), `unstable` (argmin s), `random`, `<evaluator>` (best by that score) or
    `oracle:<evaluator>` (best by the score it is judged by: the same pick, named as the upper bound it is)."""
    if similarity not in SIMILARITY_NAMES:
        raise NoiseExpError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITY_NAMES)}")
    stability = f"{STABILITY_PREFIX}{similarity}"
    if text == "stability":
        return Rule("stable", stability)
    if text == "unstable":
        return Rule("unstable", stability, sign=-1.0)
    if text == "random":
        return Rule("random", None, cost=ONE_DENOISE)
    oracle = text.startswith("oracle:")
    name = text.split(":", 1)[1] if oracle else text
    if not name.isidentifier():
        raise NoiseExpError(f"cannot read the rule {text!r}: use stability, unstable, random, <evaluator> or "
                            f"oracle:<evaluator>")
    return Rule(f"{'oracle' if oracle else 'best'}_{name}", f"{SCORE_PREFIX}{name}", cost=SCORED)


BANK_METHOD = "bank_select"  # method.json's `method` of a bank query's run folder
RULE_LABELS = {"stable": "Stable noise (argmax s)", "unstable": "Unstable noise (argmin s)",
               "random": "Random seed"}


def rule_label(variant: str) -> str:
    """A rule's row label: `best_<score>` -> "Best of K by <score>", `oracle_<score>` -> "Oracle by <score>"."""
    kind, _, score = variant.partition("_")
    if variant in RULE_LABELS:
        return RULE_LABELS[variant]
    return f"{'Oracle' if kind == 'oracle' else 'Best of K'} by {score}"


PICK_PREFIXES = ("best_", "oracle_")  # the variants of rules that keep the best candidate by a score


def rule_comparisons(variants: Sequence[str]) -> list[tuple[str, str]]:
    """The comparisons of a bank query's variants, in order: stable and each best_/oracle_ pick vs random, then each
    best_/oracle_ pick vs stable (where those variants exist)."""
    names = list(dict.fromkeys(str(v) for v in variants))
    picks = [v for v in names if v.startswith(PICK_PREFIXES)]
    pairs = [(v, "random") for v in ["stable", *picks] if v in names and "random" in names]
    return pairs + [(v, "stable") for v in picks if "stable" in names]
