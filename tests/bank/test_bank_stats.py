"""Correlation arithmetic against hand-computed values, and the correlate command on synthetic banks."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from noise_exp.candidates import CandidateBank
from noise_exp.bank.__main__ import main as bank_main
from noise_exp.bank.stats import pooled_stats, prompt_stats
from tests.support.bank import SCOPE, synthetic

SPREAD = math.sqrt(5 / 3)  # sample std of 1, 2, 3, 4


def test_one_prompt_by_hand():
    stats = prompt_stats(np.array([2.0, 1.0, 4.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert stats.rho == pytest.approx(1 - 6 * 4 / (4 * 15))  # sum of squared rank differences 4
    assert stats.tau == pytest.approx((4 - 2) / 6)  # 4 concordant, 2 discordant pairs
    assert stats.gain == pytest.approx((3 - 2.5) / SPREAD)  # argmax s keeps y = 3; a random pick expects 2.5
    assert stats.oracle_gain == pytest.approx((4 - 2.5) / SPREAD)
    flat = prompt_stats(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0]))
    assert math.isnan(flat.rho) and math.isnan(flat.gain)


def test_pooling_within_prompt_ranks_and_bootstrap_intervals():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    partly, fully, reversed_ = prompt_stats(np.array([2.0, 1.0, 4.0, 3.0]), y), prompt_stats(y * 10, y), \
        prompt_stats(-y, y)
    pooled = pooled_stats([partly, fully], draws=500, seed=1)
    assert pooled.rho.estimate == pytest.approx((0.6 + 1.0) / 2)  # equal K: the mean of the prompts' rho
    assert pooled.tau.estimate == pytest.approx((1 / 3 + 1) / 2)
    assert pooled.gain.estimate == pytest.approx((0.5 / SPREAD + 1.5 / SPREAD) / 2)
    assert pooled.oracle_gap.estimate == pytest.approx((1.0 / SPREAD + 0.0) / 2)
    assert pooled.rho.low == pytest.approx(0.6) and pooled.rho.high == pytest.approx(1.0)  # two prompts' extremes
    assert (pooled.prompts, pooled.candidates, pooled.share_positive) == (2, 8, 1.0)
    same = pooled_stats([reversed_] * 5, draws=200)
    assert (same.rho.estimate, same.rho.low, same.rho.high) == pytest.approx((-1, -1, -1))
    assert same.gain.estimate == pytest.approx(-1.5 / SPREAD) and same.share_positive == 0.0
    # a prompt whose score has no spread adds no gain but keeps its ranks out of rho
    flat = prompt_stats(np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 5.0, 5.0, 5.0]))
    assert pooled_stats([fully, flat], draws=50).gain.estimate == pytest.approx(1.5 / SPREAD)


def test_correlate_command_writes_the_table_and_the_plot(tmp_path, capsys):
    bank = CandidateBank(tmp_path / "bank", create=True)
    writer = bank.writer()
    for prompt, sign in (("a cat", 1), ("a dog", 1), ("a cow", -1)):
        candidates = synthetic(prompt, range(10))
        for candidate in candidates:  # aes rises with the seed (and so with s) for cat and dog, falls for cow
            candidate.scores = {"aes": sign * candidate.seed + (1.5 * (candidate.seed % 2) if sign > 0 else 0)}
        writer.add(SCOPE, candidates)
    assert bank_main(["correlate", str(tmp_path / "bank"), "--scores", "aes", "--bootstrap", "300"]) == 0
    out = tmp_path / "bank" / "bank_correlate"
    table = pd.read_csv(out / "correlation.csv").set_index("similarity")
    assert list(table.index) == ["cosine", "pearson", "neg_rmse"] and (table["prompts"] == 3).all()
    per_prompt = pd.read_csv(out / "per_prompt.csv")
    cosine = per_prompt[per_prompt["similarity"] == "cosine"].set_index("prompt")
    assert cosine.loc["a cow", "rho"] == pytest.approx(-1) and cosine.loc["a cat", "rho"] < 1
    assert table.loc["cosine", "rho"] == pytest.approx(cosine["rho"].mean())
    assert table.loc["cosine", "rho_low"] <= table.loc["cosine", "rho"] <= table.loc["cosine", "rho_high"]
    # neg_rmse = -seed/100 orders the candidates the other way round from cosine = seed/1000
    assert table.loc["neg_rmse", "rho"] == pytest.approx(-table.loc["cosine", "rho"])
    assert (out / "scatter.png").stat().st_size > 1000
    assert "| cosine | aes | 3 | 30 |" in (out / "correlation.md").read_text()
    assert bank_main(["correlate", str(tmp_path / "bank"), "--scores", "hpsv2"]) == 2
    assert "no hpsv2 scores" in capsys.readouterr().err
