"""The seeds x prompts view of a bank: the table of s(eps) that `decompose` reads, and the seed prior computed from
it (the file format is noise_exp.candidates.seed_prior)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noise_exp.bank.queries import CandidateSet
from noise_exp.candidates.keys import BankScope
from noise_exp.candidates.rules import SIMILARITY_NAMES
from noise_exp.candidates.seed_prior import SeedPrior
from noise_exp.candidates.storage import STABILITY_PREFIX
from noise_exp.errors import NoiseExpError


@dataclass
class SeedTable:
    """s(eps) of every (prompt, seed) pair: `values[p, k]` for `prompts[p]` and `seeds[k]`; `nfe` the round trips'
    total NFEs."""

    prompts: list[str]
    seeds: list[int]
    values: np.ndarray
    nfe: float


def seed_table(candidates: CandidateSet, similarity: str = "cosine") -> SeedTable:
    """The seeds every prompt of `candidates` has (their intersection, in seed order) by the prompts."""
    if similarity not in SIMILARITY_NAMES:
        raise NoiseExpError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITY_NAMES)}")
    frames = [p.frame.drop_duplicates("seed").set_index("seed") for p in candidates.prompts]
    shared = sorted(set.intersection(*(set(frame.index) for frame in frames)))
    if len(shared) < 2:
        raise NoiseExpError(f"the prompts of {candidates.source} share {len(shared)} seed(s): a seed table needs the "
                            f"same seeds for every prompt (method.seeds_per_prompt=false)")
    column = f"{STABILITY_PREFIX}{similarity}"
    values = np.stack([frame.loc[shared, column].to_numpy(dtype=np.float64) for frame in frames])
    nfe = float(sum(frame.loc[shared, "nfe"].sum() for frame in frames))
    return SeedTable([p.prompt for p in candidates.prompts], [int(s) for s in shared], values, nfe)


def seed_prior(table: SeedTable, scope: BankScope, similarity: str, source: str = "") -> SeedPrior:
    """prior_k = (1/P) sum_p s[p, k]."""
    return SeedPrior(dict(scope.settings), similarity, list(table.seeds), table.values.mean(axis=0).tolist(),
                     list(table.prompts), table.nfe, source)
