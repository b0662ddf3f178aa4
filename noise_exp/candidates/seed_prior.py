"""The seed prior file: each seed's mean stability over a bank's prompts, which `method.proxy=prior:<file>` ranks
candidates by with no network call (measured by noise_exp.bank.seed_table: `python -m noise_exp.bank prior`).

A prior file (JSON) keeps the scope it was measured in (model and sampler settings, weights by content), the
similarity, the calibration prompts and what measuring it cost, so a run of another model or sampler refuses it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from noise_exp.candidates.keys import BankScope
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes

PRIOR_FORMAT = "noise-exp seed prior 1"


@dataclass
class SeedPrior:
    """Each seed's mean s(eps) over the calibration prompts, measured in `scope` with `similarity`."""

    scope: dict[str, Any]  # BankScope settings
    similarity: str
    seeds: list[int]
    prior: list[float]
    prompts: list[str]  # the calibration prompts: keep test prompts disjoint from these
    nfe: float  # NFEs that measuring it cost (every calibration round trip)
    source: str = ""

    @property
    def bank_scope(self) -> BankScope:
        return BankScope(dict(self.scope))

    def scores(self, seeds: list[int]) -> np.ndarray:
        """The prior of each seed (a seed it was not measured on is an error)."""
        index = dict(zip(self.seeds, self.prior))
        missing = [s for s in seeds if s not in index]
        if missing:
            raise NoiseExpError(f"the seed prior {self.source} has no seed {missing[0]} (it covers {len(self.seeds)} "
                                f"seeds, {min(self.seeds)}..{max(self.seeds)}); measure it on those seeds")
        return np.array([index[s] for s in seeds], dtype=np.float64)

    def check_scope(self, scope: BankScope, similarity: str) -> None:
        """Refuse (one line) a run of other model/sampler settings or another similarity than the prior's."""
        mine = self.bank_scope
        if mine.digest != scope.digest:
            raise NoiseExpError(f"the seed prior {self.source} was measured with other model/sampler settings "
                                f"({mine.differences(scope)}); measure one for this model with "
                                f"python -m noise_exp.bank prior")
        if similarity != self.similarity:
            raise NoiseExpError(f"the seed prior {self.source} ranks seeds by {self.similarity} stability, this run "
                                f"selects by {similarity}")


def write_prior(prior: SeedPrior, path: Path) -> None:
    data = {"format": PRIOR_FORMAT, **asdict(prior)}
    atomic_write_bytes(Path(path), (json.dumps(data, indent=1, default=str) + "\n").encode("utf-8"))


def read_prior(path: Path) -> SeedPrior:
    """A prior file, or one line saying why it cannot be used."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise NoiseExpError(f"the seed prior {path} does not exist; write one with python -m noise_exp.bank prior "
                            f"<bank> --out {path}")
    try:
        data: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != PRIOR_FORMAT:
            raise ValueError("not a seed prior")
        prior = SeedPrior(dict(data["scope"]), str(data["similarity"]), [int(s) for s in data["seeds"]],
                          [float(v) for v in data["prior"]], [str(p) for p in data["prompts"]], float(data["nfe"]),
                          str(path))
        if len(prior.seeds) != len(prior.prior) or not prior.seeds:
            raise ValueError("seeds and prior differ in length")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise NoiseExpError(f"the seed prior {path} is not readable ({err}); write it again with "
                            f"python -m noise_exp.bank prior") from None
    return prior
