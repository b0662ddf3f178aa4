"""Selection rules as queries over stored candidates: which of a prompt's K candidates each rule keeps, and what
running that rule from scratch would have cost (from the candidates' recorded NFEs and seconds).

The candidates come from a bank (one prompt = one prompt text, all its seeds in one scope) or from a run made with
`bank.path` (one prompt = one prompt id of the run, exactly the seeds that run selected among, in the run's scope).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from noise_exp.candidates.keys import BankScope, candidate_key
from noise_exp.candidates.rules import (BANK_METHOD, ONE_DENOISE, PICK_PREFIXES, ROUNDTRIPS, Rule, rule_comparisons,
                                        rule_label)
from noise_exp.candidates.session import read_run_link
from noise_exp.candidates.storage import SCORE_PREFIX, STABILITY_PREFIX, BankContents, CandidateBank
from noise_exp.errors import NoiseExpError

if TYPE_CHECKING:
    from noise_exp.methods.declaration import Declaration


def rule_declaration(rules: Sequence[Rule]) -> "Declaration":
    """What a bank query's run folder holds (its method.json): one variant per rule, in rule order, and the rules'
    comparisons (noise_exp.candidates.rules.rule_comparisons)."""
    from noise_exp.methods.declaration import Comparison, Declaration, VariantSpec

    names = list(dict.fromkeys(r.variant for r in rules))
    picks = [v for v in names if v.startswith(PICK_PREFIXES)]
    main = (picks or [v for v in names if v == "stable"] or names)[0]
    return Declaration(method=BANK_METHOD,
                       variants=tuple(VariantSpec(v, rule_label(v), "kept") for v in names),
                       comparisons=tuple(Comparison(a, b) for a, b in rule_comparisons(names)), main_variant=main)


@dataclass
class PromptCandidates:
    """One prompt's candidates in seed order, with what a run folder needs to name it."""

    prompt_id: int
    prompt: str
    dataset: str
    frame: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CandidateSet:
    """The candidates of one scope, grouped by prompt."""

    source: Path
    bank: CandidateBank
    scope: BankScope
    prompts: list[PromptCandidates]
    model_config: dict[str, Any] | None = None
    score_names: list[str] = field(default_factory=list)

    def first(self, k: int | None) -> "CandidateSet":
        """Each prompt's first k candidates in seed order (all of them for None); fewer than k is an error."""
        if k is None:
            return self
        short = [p for p in self.prompts if len(p.frame) < k]
        if short:
            raise NoiseExpError(f"--k {k}: {len(short)} prompt(s) have fewer candidates (e.g. {short[0].prompt!r} "
                                f"has {len(short[0].frame)})")
        prompts = [PromptCandidates(p.prompt_id, p.prompt, p.dataset, p.frame.head(k), p.meta) for p in self.prompts]
        return CandidateSet(self.source, self.bank, self.scope, prompts, self.model_config, self.score_names)


def load_candidates(source: Path, scope: str | None = None, bank_path: Path | None = None) -> CandidateSet:
    """The candidates of a bank folder (`scope`: a digest prefix, needed when it holds several) or of a run folder
    made with `bank.path` (`bank_path` overrides the bank its config names)."""
    source = Path(source)
    if (source / "run.json").is_file():
        return _run_candidates(source, bank_path)
    if not source.is_dir():
        raise NoiseExpError(f"{source} does not exist")
    bank = CandidateBank(bank_path or source)
    contents = bank.read()
    digest = _one_scope(bank, contents, scope)
    frame = contents.in_scope(digest)
    prompts = [PromptCandidates(index, text, "bank", rows.sort_values("seed", kind="stable").reset_index(drop=True))
               for index, (text, rows) in enumerate(sorted(frame.groupby("prompt", sort=False), key=lambda x: x[0]))]
    return CandidateSet(source, bank, contents.scopes[digest], prompts, contents.model_configs.get(digest),
                        contents.one_scorer_each(frame))


def _one_scope(bank: CandidateBank, contents: BankContents, wanted: str | None) -> str:
    present = list(dict.fromkeys(contents.frame["scope"]))
    if not present:
        raise NoiseExpError(f"the bank {bank.path} holds no candidates")
    if wanted is not None:
        matches = [d for d in present if d.startswith(wanted)]
        if len(matches) != 1:
            raise NoiseExpError(f"--scope {wanted} matches {len(matches)} of the bank's scopes ({', '.join(present)})")
        return matches[0]
    if len(present) > 1:
        first, second = (contents.scopes[d] for d in present[:2])
        raise NoiseExpError(f"the bank {bank.path} holds candidates of {len(present)} model/sampler settings "
                            f"({', '.join(present)}; the first two differ in {first.differences(second)}); choose one "
                            f"with --scope, or query a run folder")
    return present[0]


def _run_candidates(run_dir: Path, bank_path: Path | None) -> CandidateSet:
    """The candidates a run selected among: its prompts, the seeds in its records, its scope (run.json)."""
    from noise_exp.rundir.fingerprint import read_fingerprint
    from noise_exp.rundir.store import RunStore

    bank_path = bank_path or read_run_link(run_dir)
    if bank_path is None:
        raise NoiseExpError(f"{run_dir} was not run with bank.path=...: its candidates were not stored (or give "
                            f"the bank with --bank)")
    scope = BankScope.from_settings(read_fingerprint(run_dir).settings)
    bank = CandidateBank(bank_path)
    contents = bank.read()
    by_key = contents.in_scope(scope.digest).set_index("key", drop=False)
    prompts = []
    for record in RunStore(run_dir).records():
        seeds = [int(seed) for seed, _ in record["selection_scores"]]
        keys = [candidate_key(scope.digest, record["prompt"], seed) for seed in seeds]
        missing = [seed for seed, key in zip(seeds, keys) if key not in by_key.index]
        if not seeds or missing:
            raise NoiseExpError(f"{len(missing)} of {len(seeds)} candidates of prompt {record['prompt_id']} of "
                                f"{run_dir} are not in the bank {bank.path} (in scope {scope.digest})")
        prompts.append(PromptCandidates(int(record["prompt_id"]), record["prompt"], record["dataset"],
                                        by_key.loc[keys].reset_index(drop=True), dict(record.get("meta") or {})))
    if not prompts:
        raise NoiseExpError(f"{run_dir} has no finished prompts")
    frame = pd.concat([p.frame for p in prompts])
    return CandidateSet(run_dir, bank, scope, prompts, contents.model_configs.get(scope.digest),
                        contents.one_scorer_each(frame))


@dataclass
class Choice:
    """What a rule keeps for one prompt, and what running the rule from scratch costs."""

    prompt: PromptCandidates
    rule: Rule
    row: dict[str, Any]
    nfe: float
    seconds: float


def choose(prompt: PromptCandidates, rule: Rule, rng: np.random.Generator) -> Choice:
    """The rule's pick among the prompt's candidates; ties keep the first seed, as `select_noise` does."""
    frame = prompt.frame
    if rule.column is None:
        position = int(rng.integers(len(frame)))
    else:
        if rule.column not in frame.columns or frame[rule.column].isna().any():
            raise NoiseExpError(f"rule {rule.variant}: candidates of {prompt.prompt!r} have no {rule.column} (score "
                                f"them with method.score_candidates=true and that evaluator)")
        position = int(np.argmax(rule.sign * frame[rule.column].to_numpy(dtype=np.float64)))
    row = frame.iloc[position].to_dict()
    if rule.cost == ROUNDTRIPS:
        nfe, seconds = frame["nfe"].sum(), frame["seconds"].sum()
    elif rule.cost == ONE_DENOISE:
        nfe, seconds = row["nfe_denoise"], row["seconds_denoise"]
    else:
        nfe, seconds = frame["nfe_denoise"].sum(), (frame["seconds_denoise"] + frame["seconds_scoring"]).sum()
    return Choice(prompt, rule, row, float(nfe), float(seconds))


def apply_rules(candidates: CandidateSet, rules: Sequence[Rule], seed: int = 0) -> list[list[Choice]]:
    """Per prompt, each rule's choice. A random pick depends on (seed, prompt id) only, not on the other rules."""
    return [[choose(prompt, rule, np.random.default_rng([seed, prompt.prompt_id])) for rule in rules]
            for prompt in candidates.prompts]
