"""experiment=compare_methods: the knobs per budget, the held-out judge, and a one-prompt ladder rung of every
method run in-process and reported (NFEs in results.csv against each method's cost formula)."""
from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from noise_exp.errors import NoiseExpError
from noise_exp.report.compare import knob_overrides, ladder_knobs, read_compared_run, write_compare
from noise_exp.runner import build, run_experiment
from tests.conftest import compose_cfg

pytestmark = pytest.mark.xdist_group("compare_ladder")  # its module fixture runs the ladder once

METHODS = ("select", "optimize", "best_of_n", "reward_opt", "random")
G, R, D = 20, 30, 256  # small_shapes: T = 10 at guidance 2 (CFG), inversion without CFG; 4x8x8 latents


def test_the_experiment_file_holds_the_knobs_ladder_knobs_computes():
    cfg = compose_cfg(["experiment=compare_methods"])
    written = OmegaConf.to_container(cfg.compare.knobs)
    assert ladder_knobs([1, 4, 16], G, R, D) == written
    assert written["select"] == {"x1": 1, "x4": 2, "x16": 10} and written["reward_opt"] == {"x1": 0, "x4": 0, "x16": 3}
    with pytest.raises(NoiseExpError, match="at least one generation"):
        ladder_knobs([0, 4], G, R, D)


@pytest.mark.parametrize("method", ["best_of_n", "reward_opt"])
def test_no_method_may_see_the_held_out_judge(method):
    cfg = compose_cfg(["experiment=compare_methods", f"+compare_method={method}"])
    assert build(cfg.method, "method").verifier_name == "shapes_reward" not in cfg.compare.held_out
    with pytest.raises(NoiseExpError, match="held-out judge"):  # as run.py builds it: one line, exit 2
        build(compose_cfg(["experiment=compare_methods", f"+compare_method={method}",
                           "compare.verifier=shapes_geneval"]).method, "method")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """Every method at a budget of 5 generations on the first shapes_bench prompt, as the sweep's jobs would run."""
    folder = tmp_path_factory.mktemp("compare")
    knobs = knob_overrides(ladder_knobs([5], G, R, D))
    for method in METHODS:
        cfg = compose_cfg(["experiment=compare_methods", f"+compare_method={method}", "compare.budget=x5",
                           "dataset.limit=1", "model.device=cpu", *knobs])
        run_dir = folder / f"{method}_x5"
        run_experiment(cfg, run_dir)
        (run_dir / ".hydra").mkdir()
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # what Hydra saves for each job
    return folder


def test_results_count_each_methods_cost_and_the_report_marks_what_it_saw(ladder):
    expected = {"select": 3 * R, "optimize": 3 * R, "best_of_n": 5 * G, "reward_opt": (4 * 1 + 1) * G, "random": G}
    main = {"select": "stable", "optimize": "optimized", "best_of_n": "best", "reward_opt": "reward_optimized",
            "random": "random"}
    for method, nfe in expected.items():
        rows = pd.read_csv(ladder / f"{method}_x5" / "results.csv").set_index("variant")
        assert rows.loc[main[method], "unet_calls"] == nfe, method
    result = write_compare(ladder)
    table = result.table.set_index("method")
    assert table["nfe"].to_dict() == {m: float(n) for m, n in expected.items()}
    assert table["saw"].to_dict() == {"random": "nothing", "select": "stability s(ε)", "optimize": "stability s(ε)",
                                      "best_of_n": "shapes_reward", "reward_opt": "shapes_reward"}
    assert "shapes_geneval (held out)" in result.markdown and "(seen)" in result.markdown
    assert {"shapes_geneval", "shapes_reward", "shapes_reward_win"} <= set(table.columns)
    assert result.files["png"].stat().st_size > 10_000


def test_a_run_whose_verifier_is_a_held_out_judge_stops_the_report(ladder, tmp_path):
    saved = OmegaConf.load(ladder / "best_of_n_x5" / ".hydra" / "config.yaml")
    saved.compare.held_out = ["shapes_reward"]
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(saved, tmp_path / ".hydra" / "config.yaml")
    with pytest.raises(NoiseExpError, match="held-out judge"):
        read_compared_run(tmp_path)
