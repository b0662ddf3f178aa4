"""experiment=compare_methods: the knobs per budget, the held-out judge, and a one-prompt ladder rung of every
method run in-process and reported (NFEs in results.csv against each method's cost formula)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

from noise_exp.errors import NoiseExpError
from noise_exp.methods.registry import compare_classes
from noise_exp.report.compare import read_compared_run, write_compare
from noise_exp.studies.compare import compare_method_yaml, ladder_budgets, ladder_knobs, study_overrides
from noise_exp.runner import build, run_experiment
from tests.conftest import ROOT as REPO, compose_cfg

pytestmark = pytest.mark.xdist_group("compare_ladder")  # its module fixture runs the ladder once

METHODS = ("random", "select", "optimize", "best_of_n", "reward_opt")  # declared baseline first, then registry
G, R, D = 20, 30, 256  # small_shapes: T = 10 at guidance 2 (CFG), inversion without CFG; 4x8x8 latents


def test_the_experiment_file_holds_the_knobs_the_methods_at_budget_computes():
    cfg = compose_cfg(["experiment=compare_methods"])
    written = OmegaConf.to_container(cfg.compare.knobs)
    budgets = ladder_budgets([1, 4, 16], G, R, D, "shapes_reward")
    assert ladder_knobs(budgets) == written
    assert [cls.name for cls in compare_classes()] == list(METHODS) == list(written)
    assert written["select"] == {"num_seeds": {"x1": 1, "x4": 2, "x16": 10}}
    assert written["reward_opt"]["steps"] == {"x1": 0, "x4": 0, "x16": 3}
    assert written["optimize"]["lr"] == {"x1": 39.0625, "x4": 39.0625, "x16": 4.3403}
    for cls in compare_classes():  # conf/compare_method holds what the study writes for each method
        assert (REPO / "conf" / "compare_method" / f"{cls.name}.yaml").read_text() == compare_method_yaml(
            cls, budgets["x1"]), cls.name
    with pytest.raises(NoiseExpError, match="at least one generation"):
        ladder_budgets([0, 4], G, R, D, "shapes_reward")


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
    planned = study_overrides(ladder_budgets([5], G, R, D, "shapes_reward"), tmp_path_factory.mktemp("conf"))
    assert planned[:2] == [f"+compare_method={','.join(METHODS)}", "compare.budget=x5"]
    knobs = planned[2:]
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


def test_the_compare_table_counts_ties_with_the_report_tie_tolerance(tmp_path):
    """best_of_n vs random on three prompts: shapes_reward differs by 1.25e-5 (saturated), 1e-7 (the same image in
    another batch) and 0.2; shapes_geneval by 0, 0 and 1. By hand: under conf/config.yaml's 1e-3 for shapes_reward,
    1 win and 2 ties, win rate (1 + 2/2) / 3 = 2/3; counted exactly, 1.25e-5 is a win and only the float-noise floor
    (1e-6) keeps 1e-7 a tie: (2 + 1/2) / 3. The 0/1 judge is not affected: (1 + 2/2) / 3 both ways."""
    from noise_exp.report.compare import compare_table
    from noise_exp.report.sweep import tie_tolerances

    reward = {"random": (0.9990, 0.5, 0.3), "best_of_n": (0.9990125, 0.5000001, 0.5)}
    judge = {"random": (1.0, 0.0, 0.0), "best_of_n": (1.0, 0.0, 1.0)}
    rows = pd.DataFrame([{"method": method, "budget": 4, "saw": "nothing", "dataset": "shapes_bench",
                          "prompt_id": i, "unet_calls": 20, "time_s": 0.1, "shapes_reward": reward[method][i],
                          "shapes_geneval": judge[method][i]} for method in reward for i in range(3)])
    tolerant = compare_table(rows, draws=10, tolerances=tie_tolerances([tmp_path])).set_index("method")
    exact = compare_table(rows, draws=10, tolerances={"shapes_reward": 0.0}).set_index("method")
    assert tie_tolerances([tmp_path]) == {  # a run without .hydra/: conf/config.yaml's
        "digit_classifier": 1e-3, "shapes_reward": 1e-3}
    assert tolerant.loc["best_of_n", "shapes_reward_win"] == pytest.approx(2 / 3)
    assert exact.loc["best_of_n", "shapes_reward_win"] == pytest.approx(2.5 / 3)
    assert tolerant.loc["best_of_n", "shapes_geneval_win"] == exact.loc["best_of_n", "shapes_geneval_win"] == 2 / 3
    assert math.isnan(tolerant.loc["random", "shapes_reward_win"])
