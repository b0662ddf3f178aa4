"""The seed's share of s(eps) (two-way random-effects decomposition) and the seed prior (issue 24)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from noise_exp.candidates import CandidateBank
from noise_exp.bank.decompose import (anova_mean_squares, decompose, mean_pairwise_spearman, variance_components,
                                      variance_shares)
from tests.support.bank import SCOPE, synthetic

RNG = np.random.default_rng(0)
PROMPT_EFFECT = RNG.normal(0, 1, size=(12, 1))
SEED_EFFECT = RNG.normal(0, 1, size=(1, 40))


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean()


@pytest.mark.parametrize("table, shares", [
    (0.7 + np.zeros((12, 1)) + SEED_EFFECT, (1.0, 0.0, 0.0)),  # seed only
    (0.7 + PROMPT_EFFECT + np.zeros((1, 40)), (0.0, 1.0, 0.0)),  # prompt only
    # interaction only: u_p v_k with zero-mean u and v has zero row and column means
    (0.7 + np.outer(_centred(PROMPT_EFFECT[:, 0]), _centred(SEED_EFFECT[0])), (0.0, 0.0, 1.0)),
], ids=["seed-only", "prompt-only", "interaction-only"])
def test_pure_tables_recover_their_share(table, shares):
    result = variance_shares(table)
    assert (result.seed, result.prompt, result.rest) == pytest.approx(shares, abs=1e-12)


def test_mean_squares_and_components_by_hand():
    table = np.array([[1.0, 2.0, 6.0], [3.0, 6.0, 9.0]])  # grand mean 4.5, prompt means 3, 6, seed means 2, 4, 7.5
    ms = anova_mean_squares(table)
    assert ms.prompt == pytest.approx(3 * (1.5 ** 2 + 1.5 ** 2) / 1)
    assert ms.seed == pytest.approx(2 * (2.5 ** 2 + 0.5 ** 2 + 3.0 ** 2) / 2)
    residual = table - np.array([[3.0], [6.0]]) - np.array([[2.0, 4.0, 7.5]]) + 4.5
    assert ms.rest == pytest.approx((residual ** 2).sum() / 2)
    seed, prompt, rest = variance_components(ms)
    assert (seed, prompt, rest) == pytest.approx(((ms.seed - ms.rest) / 2, (ms.prompt - ms.rest) / 3, ms.rest))


def test_known_mixture_of_shares_and_intervals_cover_it():
    # var_seed 0.6, var_prompt 0.1, var_rest 0.3 drawn on a large table: the estimate is close and inside its interval
    rng = np.random.default_rng(1)
    table = (rng.normal(0, 0.1 ** 0.5, (60, 1)) + rng.normal(0, 0.6 ** 0.5, (1, 200))
             + rng.normal(0, 0.3 ** 0.5, (60, 200)))
    result = decompose(table, draws=200, seed=0)
    for interval, truth in ((result.seed, 0.6), (result.prompt, 0.1), (result.rest, 0.3)):
        assert interval.estimate == pytest.approx(truth, abs=0.07)
        assert interval.low <= interval.estimate <= interval.high
    assert result.seed.low < 0.6 < result.seed.high
    assert 0.0 < result.spearman.estimate < 1.0


def test_pairwise_spearman_of_identical_reversed_and_duplicated_rows():
    row = np.arange(10.0)
    assert mean_pairwise_spearman(np.stack([row, row * 2 + 1, row ** 3])) == pytest.approx(1.0)
    assert mean_pairwise_spearman(np.stack([row, -row])) == pytest.approx(-1.0)
    # a prompt drawn twice by a bootstrap is not compared with itself: only the (row, -row) pairs count
    assert mean_pairwise_spearman(np.stack([row, row, -row]), groups=[0, 0, 1]) == pytest.approx(-1.0)


def _bank(tmp_path, table: np.ndarray):
    """A bank whose candidate (prompt p, seed k) has cosine stability table[p, k]."""
    bank = CandidateBank(tmp_path / "bank", create=True)
    candidates = []
    for p, row in enumerate(table):
        for k, value in enumerate(row):
            candidate = synthetic(f"prompt {p}", [k])[0]
            candidate.stability = {"cosine": float(value)}
            candidates.append(candidate)
    bank.writer("test").add(SCOPE, candidates, {})
    return bank.path


def test_decompose_and_prior_commands_on_a_bank(tmp_path, capsys):
    from noise_exp.bank.__main__ import main

    table = 0.5 + SEED_EFFECT[:, :6] * 0.01 + PROMPT_EFFECT[:4] * 0.001
    bank = _bank(tmp_path, table)
    assert main(["decompose", str(bank), "--bootstrap", "50"]) == 0
    data = json.loads((bank / "bank_decompose" / "decomposition.json").read_text())
    assert (data["prompts"], data["seeds"]) == (4, 6)
    assert data["seed"]["estimate"] == pytest.approx(variance_shares(table).seed)
    assert "| share of var(s): seed |" in capsys.readouterr().out
    out = tmp_path / "prior.json"
    assert main(["prior", str(bank), "--out", str(out)]) == 0
    prior = json.loads(out.read_text())
    assert prior["seeds"] == list(range(6))
    assert prior["prior"] == pytest.approx([float(np.mean(table[:, k])) for k in range(6)], abs=1e-12)
    assert prior["prompts"] == [f"prompt {p}" for p in range(4)] and prior["nfe"] == 4 * 6 * 30
    assert prior["scope"] == SCOPE.settings
