"""The speed study on a slice of small_digits (its quick mode): the table it writes and the numbers it must obey."""
from __future__ import annotations

import json

import pytest

from noise_exp.studies.__main__ import main as studies


def test_a_selection_slice_writes_rows_that_obey_their_definitions(tmp_path):
    """quick=true: the selection part only (small_digits, 2 prompts x K = 4, proxies partial:1 and steps:2, M = 1
    and 4); the optimization part's reference is 100 SGD steps (minutes on a loaded CPU)."""
    assert studies(["speed", "quick=true", f"out={tmp_path}"]) == 0
    result = json.loads((tmp_path / "results.json").read_text())["results"][0]
    assert result["model"] == "small_digits" and result["seeds"] == 4 and result["exact_nfes"] == 30
    rows = {(r["proxy"], r["shortlist"]): r for r in result["selection"]}
    assert set(rows) == {("exact (select)", 4), ("random seed", 1), ("partial:1", 1), ("partial:1", 4),
                         ("steps:2", 1), ("steps:2", 4)}
    # partial:1 is the first of 10 steps and back (3 NFEs), steps:2 a 2-step round trip (6 NFEs); M exact re-checks
    assert rows[("partial:1", 1)]["nfe_ratio"] == pytest.approx((4 * 3 + 1 * 30) / (4 * 30))
    assert rows[("steps:2", 4)]["nfe_ratio"] == pytest.approx((4 * 6 + 4 * 30) / (4 * 30))
    for proxy in ("partial:1", "steps:2"):  # a short list of all K re-checks every candidate: the exact argmax
        assert rows[(proxy, 4)]["agreement"] == 1.0
        assert rows[(proxy, 4)]["judge"] == pytest.approx(rows[("exact (select)", 4)]["judge"])
        assert -1 <= rows[(proxy, 1)]["spearman"] <= 1
    assert set(result["proxy_seconds"]) == {"exact", "partial:1", "steps:2"}
    table = (tmp_path / "table.md").read_text()
    assert "Selection: 2 prompts x K = 4" in table and "| fixed_point:3 |" not in table and "Optimization" not in table
