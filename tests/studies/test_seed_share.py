"""The seed_share study (make seed-share) on a slice of small_digits (its quick mode): disjoint prompt sets, the decomposition, the
selection rows and the select_fast run that must keep the query's seeds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from noise_exp.studies.__main__ import main as studies


def test_a_digits_slice(tmp_path):
    # quick=true: small_digits, K = 8, 2 calibration + 3 test prompts, 20 bootstrap draws, M = 1 and 8, T = 2
    assert studies(["seed_share", "quick=true", f"out={tmp_path}"]) == 0
    result = json.loads((tmp_path / "results.json").read_text())["results"][0]
    assert set(result["guidance"]) == {"3", "1"}  # the config's guidance and 1
    folder = tmp_path / "small_digits"
    texts = {split: [json.loads(line)["prompt"] for line in (folder / f"{split}.jsonl").read_text().splitlines()]
             for split in ("calibration", "test")}
    assert len(texts["test"]) == 3 and len(texts["calibration"]) == 2
    assert not set(texts["test"]) & set(texts["calibration"])
    part = result["guidance"]["3"]
    assert json.loads((folder / "prior_g3.json").read_text())["prompts"] == texts["calibration"]
    shares = part["decomposition"]
    assert shares["prompts"] == 5 and shares["seeds"] == 8
    assert shares["seed"]["estimate"] + shares["prompt"]["estimate"] + shares["rest"]["estimate"] == pytest.approx(1.0)
    rows = {(r["proxy"], r["M"]): r for r in part["selection"]}
    assert rows[("exact (select)", 8)]["same_seed"] == 1.0
    for proxy in ("prior", "norm", "lowfreq:2"):  # M = K = 8 checks every candidate: the exact argmax, at full cost
        assert rows[(proxy, 8)]["same_seed"] == 1.0 and rows[(proxy, 8)]["nfe_ratio"] == 1.0
        assert rows[(proxy, 8)]["judge"] == pytest.approx(rows[("exact (select)", 8)]["judge"])
    assert rows[("prior", 1)]["amortised_ratio"] == pytest.approx(1 / 8 + 2 / 3)  # + 2 x K over 3 x K round trips
    assert rows[("norm", 1)]["amortised_ratio"] == pytest.approx(1 / 8)
    assert part["end_to_end"]["equal"] and part["end_to_end"]["unet_calls"] == 6 * 6  # M + U = 6 round trips of 6
    assert np.isfinite(part["norm"]["spearman_norm"]) and part["norm"]["d"] == 64
    assert "| small_digits | 3 | 5 x 8 |" in (tmp_path / "table.md").read_text()
