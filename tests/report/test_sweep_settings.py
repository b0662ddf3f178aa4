"""Sweeps are reported per setting: swept result keys become columns, shards pool, `--pool` pools everything, and
stability is always in the tables (also without evaluators)."""
from __future__ import annotations

import csv

import pandas as pd
import pytest

from noise_exp.errors import NoiseExpError
from noise_exp.merge import main as merge_main
from noise_exp.merge import merge_runs
from noise_exp.report import sweep_settings, write_report
from noise_exp.report.__main__ import main as report_main
from noise_exp.report.sweep import canonical, column_names
from noise_exp.report.tables import RESERVED
from tests.support.runs import write_synthetic_run

PROMPTS = {"drawbench": ["a cat", "a dog"]}
VARIANTS = ("original", "optimized")
ORIGINAL = [0.15, 0.25]  # stability of prompts 0 and 1, the same in every job
# optimized stability per (num_steps, lr): means 0.15, 0.20, 0.45, 0.225;
# win rates vs original: 0/2, 1/2, 2/2, (1 + tie) / 2
OPTIMIZED = {(5, 10): [0.10, 0.20], (5, 100): [0.30, 0.10], (10, 10): [0.40, 0.50], (10, 100): [0.15, 0.30]}


def job(folder, num_steps, lr, overrides=None, first_prompt_id=0, optimized=None, seed=0):
    """One Hydra job of `run.py -m method=optimize model.num_steps=... method.lr=...` without a model."""
    optimized = optimized or OPTIMIZED[(num_steps, lr)]
    ids = range(first_prompt_id, first_prompt_id + 2)
    stability = {("drawbench", i, "original"): ORIGINAL[k] for k, i in enumerate(ids)}
    stability.update({("drawbench", i, "optimized"): optimized[k] for k, i in enumerate(ids)})
    # an evaluator score that identifies the setting: T + lr / 1000 for optimized, 0 for original
    hps = {key: (num_steps + lr / 1000 if key[2] == "optimized" else 0.0) for key in stability}
    if overrides is None:
        overrides = ["method=optimize", f"model.num_steps={num_steps}", f"method.lr={lr}", "evaluator=[hpsv2]"]
    config = {"model": {"name": "tiny_sd", "num_steps": num_steps, "device": "cpu"},
              "method": {"lr": float(lr), "steps": 3, "batch_size": 4}, "dataset": {"name": "drawbench"}}
    return write_synthetic_run(folder, PROMPTS, VARIANTS, metrics={"stability": stability, "hpsv2": hps},
                               image_size=8, seed=seed, first_prompt_id=first_prompt_id, overrides=overrides,
                               config=config)


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "multirun"
    for index, (num_steps, lr) in enumerate(OPTIMIZED):
        job(folder / str(index), num_steps, lr, seed=index)
    return folder


def test_swept_keys_become_columns_with_values_from_overrides_or_config(tmp_path):
    job(tmp_path / "a", 5, 10, overrides=["model.num_steps=5", "dataset.shard_index=0", "logger=wandb"])
    job(tmp_path / "b", 10, 10, overrides=["dataset.shard_index=1", "logger=none"])  # default T from its config
    job(tmp_path / "c", 10, 10, overrides=["model.num_steps=10.0", "hydra/launcher=local"])
    settings = sweep_settings([tmp_path / "a", tmp_path / "b", tmp_path / "c"], RESERVED)
    assert settings.keys == {"num_steps": "model.num_steps"}  # shard, logger, launcher keys never split
    assert [settings.values[tmp_path / n] for n in "abc"] == [{"num_steps": "5"}, {"num_steps": "10"},
                                                               {"num_steps": "10"}]
    assert [canonical(v) for v in (100.0, "1e2", 100, "true", None, 0.5)] == ["100", "100", "100", "true", "null",
                                                                              "0.5"]
    names = column_names(["model.num_steps", "method.lr", "method.selection.lr", "dataset", "prompt"], RESERVED)
    assert names == {"num_steps": "model.num_steps", "method.lr": "method.lr",
                     "method.selection.lr": "method.selection.lr", "setting.dataset": "dataset",
                     "setting.prompt": "prompt"}


def test_a_dataset_sweep_is_the_dataset_column_but_prompt_files_are_settings(tmp_path):
    for name, path in (("pickapic", None), ("drawbench", None), ("prompts", "a.txt"), ("prompts", "b.txt")):
        folder = tmp_path / (path or name)
        overrides = ["experiment=table1", f"dataset={name}"] + ([f"dataset.path={path}"] if path else [])
        write_synthetic_run(folder, {name: ["a cat"]}, ("stable", "unstable"), image_size=8, overrides=overrides,
                            config={"dataset": {"name": name, "path": path}, "model": {"num_steps": 4}})
    table1 = sweep_settings([tmp_path / "pickapic", tmp_path / "drawbench"], RESERVED)
    assert table1.keys == {}  # `dataset=pickapic,drawbench` only repeats the results' dataset column
    files = sweep_settings([tmp_path / "a.txt", tmp_path / "b.txt"], RESERVED)
    assert files.keys == {"path": "dataset.path"}
    assert [v["path"] for v in files.values.values()] == ["a.txt", "b.txt"]


def test_two_by_two_sweep_merges_into_four_rows_per_variant(sweep):
    out = merge_runs(sweep)
    merged = pd.read_csv(out / "results.csv")
    assert list(merged.columns[:3]) == ["run", "num_steps", "lr"] and len(merged) == 16
    assert set(zip(merged.num_steps, merged.lr)) == set(OPTIMIZED)

    means = pd.read_csv(out / "report" / "means.csv")
    assert list(means.columns) == ["num_steps", "lr", "dataset", "variant", "n", "hpsv2", "stability"]
    optimized = means[means.variant == "optimized"]
    assert list(zip(optimized.num_steps, optimized.lr)) == [(5, 10), (5, 100), (10, 10), (10, 100)]
    assert optimized.stability.tolist() == pytest.approx([0.15, 0.20, 0.45, 0.225])
    assert optimized.hpsv2.tolist() == pytest.approx([5.01, 5.1, 10.01, 10.1])
    assert optimized.n.tolist() == [2, 2, 2, 2]
    assert means[means.variant == "original"].stability.tolist() == pytest.approx([0.2] * 4)

    rates = pd.read_csv(out / "report" / "winning_rates.csv")
    assert list(rates.columns[:4]) == ["num_steps", "lr", "dataset", "a"]
    on_stability = rates[rates.metric == "stability"]
    assert on_stability.win_rate.tolist() == pytest.approx([0.0, 0.5, 1.0, 0.75])
    assert on_stability.ties.tolist() == [0, 0, 0, 1] and on_stability.n.tolist() == [2, 2, 2, 2]
    assert (rates[rates.metric == "hpsv2"].win_rate == 1.0).all()

    layout = (out / "report" / "means.md").read_text().splitlines()
    assert layout[0] == "| num_steps | lr | Dataset | Noise | HPS v2 | Stability |"
    assert "| 10 | 100 | drawbench | Optimized noise | 10.1000 | 0.2250 |" in layout
    report_md = (out / "report" / "report.md").read_text()
    assert "`num_steps` (model.num_steps), `lr` (method.lr)" in report_md
    grids = sorted(p.name for p in (out / "report").glob("grid_*.png"))
    assert grids == sorted(f"grid_optimized_vs_original_num_steps-{t}_lr-{lr}.png" for t, lr in OPTIMIZED)
    assert (out / "report" / "winning_rates.png").stat().st_size > 1000


def test_pool_gives_the_old_pooled_result(sweep, tmp_path):
    out = merge_runs(sweep, tmp_path / "pooled", pool=True)
    assert {"num_steps", "lr"} <= set(pd.read_csv(out / "results.csv").columns)  # the merged table keeps them
    means = pd.read_csv(out / "report" / "means.csv")
    assert list(means.columns) == ["dataset", "variant", "n", "hpsv2", "stability"]
    row = means.set_index("variant").loc["optimized"]
    assert row.n == 8 and row.stability == pytest.approx(2.05 / 8)
    rates = pd.read_csv(out / "report" / "winning_rates.csv")
    stability = rates[rates.metric == "stability"].iloc[0]
    assert (stability.n, stability.wins, stability.ties) == (8, 4, 1)
    assert stability.win_rate == pytest.approx(4.5 / 8)
    assert "pooled over `num_steps` (model.num_steps), `lr` (method.lr)" in (out / "report" / "report.md").read_text()


def test_shards_of_one_setting_pool_into_one_row(tmp_path):
    folder = tmp_path / "shards"
    for shard, first in enumerate((0, 2, 4)):
        for num_steps in (5, 10):
            overrides = [f"model.num_steps={num_steps}", "dataset.num_shards=3", f"dataset.shard_index={shard}"]
            job(folder / f"T{num_steps}_s{shard}", num_steps, 10, overrides=overrides, first_prompt_id=first,
                optimized=[0.1 * (shard + 1), 0.1 * (shard + 1)])
    result = write_report(sorted(p for p in folder.iterdir()), tmp_path / "report")
    assert result.settings == ("num_steps",)
    means = result.means
    assert means.num_steps.tolist() == ["5", "5", "10", "10"] and means.n.tolist() == [6] * 4
    # optimized stability over the three shards: (0.1 + 0.2 + 0.3) * 2 / 6 = 0.2, in both settings
    assert means[means.variant == "optimized"].stability.tolist() == pytest.approx([0.2, 0.2])


def test_overlapping_runs_of_one_setting_are_refused_unless_pooled(tmp_path):
    job(tmp_path / "first", 5, 10)
    job(tmp_path / "again", 5, 10, seed=1)
    with pytest.raises(NoiseExpError, match=r"dataset drawbench prompt 0 \(variant original\) appears twice for the "
                                            r"setting 'all runs', in runs again, first: the runs overlap"):
        merge_runs(tmp_path)
    assert not (tmp_path / "merged").exists()  # nothing written
    out = merge_runs(tmp_path, pool=True)
    assert pd.read_csv(out / "report" / "means.csv").n.tolist() == [4, 4]


def test_a_method_sweep_compares_only_the_variants_each_setting_has(tmp_path):
    for method, variants in (("select", ("stable", "unstable")), ("optimize", ("original", "optimized"))):
        write_synthetic_run(tmp_path / method, PROMPTS, variants, image_size=8, overrides=[f"method={method}"])
    result = write_report([tmp_path / "select", tmp_path / "optimize"], tmp_path / "report")
    rates = result.winning_rates
    assert result.settings == ("method",)
    assert list(zip(rates.method, rates.a, rates.metric, rates.n)) == [("optimize", "optimized", "stability", 2),
                                                                       ("select", "stable", "stability", 2)]


def test_report_without_evaluators_shows_stability(tmp_path):
    stable, unstable = [0.99, 0.97, 0.95], [0.98, 0.97, 0.90]
    values = {("drawbench", i, "stable"): v for i, v in enumerate(stable)}
    values.update({("drawbench", i, "unstable"): v for i, v in enumerate(unstable)})
    run = write_synthetic_run(tmp_path / "run", {"drawbench": ["a", "b", "c"]}, ("stable", "unstable"),
                              metrics={"stability": values}, image_size=8)
    result = write_report([run], tmp_path / "report")
    means = result.means.set_index("variant")
    assert list(result.means.columns) == ["dataset", "variant", "n", "stability"]
    assert means.loc["stable", "stability"] == pytest.approx(0.97)
    assert means.loc["unstable", "stability"] == pytest.approx(0.95)
    row = result.winning_rates.iloc[0]
    assert len(result.winning_rates) == 1 and row.metric == "stability"
    assert (row.n, row.wins, row.ties, row.losses) == (3, 2, 1, 0)  # .99>.98, .97=.97, .95>.90
    assert row.win_rate == pytest.approx(2.5 / 3)
    assert "| drawbench | Stable noise | 0.9700 |" in result.files["means_md"].read_text()
    assert "| drawbench | stable vs unstable | Stability | 3 | 2 | 1 | 0 | 0.833 |" in (
        result.files["winning_rates_md"].read_text())
    assert result.files["winning_rates_png"].is_file() and result.files["grid_stable_vs_unstable"].is_file()


def test_clis_print_usage_and_take_pool(sweep, tmp_path, capsys):
    for main in (merge_main, report_main):
        with pytest.raises(SystemExit) as exit_info:
            main(["-h"])
        assert exit_info.value.code == 0 and "--pool" in capsys.readouterr().out
    assert report_main([str(p) for p in sorted(sweep.iterdir())] + ["--out", str(tmp_path / "r")]) == 0
    assert "| num_steps | lr | Dataset | Noise |" in capsys.readouterr().out
    assert merge_main([str(sweep), "--pool", "--no-tracker"]) == 0
    with open(sweep / "merged" / "report" / "means.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2


def test_curves_have_one_point_per_swept_value_with_intervals(sweep, tmp_path):
    """The 2x2 sweep over num_steps and lr: a curve per numeric key, one panel per value of the other key."""
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    for run, (num_steps, lr) in zip(runs, OPTIMIZED):  # Algorithm 2's trace: stability per step for each prompt
        pd.DataFrame({"prompt_id": [0, 0, 1, 1], "step": [0, 1, 0, 1],
                      "stability": [0.1, 0.3, 0.2, 0.4 + num_steps / 100]}).to_csv(run / "optimization_trace.csv",
                                                                                   index=False)
    result = write_report(runs, tmp_path / "report")
    for key, values, other in (("num_steps", [5.0, 10.0], "lr"), ("lr", [10.0, 100.0], "num_steps")):
        assert result.files[f"curves_{key}_png"].stat().st_size > 10_000
        data = pd.read_csv(result.files[f"curves_{key}_csv"])
        assert sorted(set(data["panel"])) == sorted(f"drawbench, {other}={v}" for v in
                                                    ({"lr": [10, 100], "num_steps": [5, 10]}[other]))
        assert set(data["series"]) == {"original", "optimized", "optimized vs original"}
        for _, line in data.groupby(["panel", "series", "metric"]):
            assert sorted(line["x"]) == values  # one point per swept value
        assert data[["value", "ci_low", "ci_high"]].notna().all().all()
        assert ((data["ci_low"] <= data["value"] + 1e-12) & (data["value"] <= data["ci_high"] + 1e-12)).all()
    data = pd.read_csv(result.files["curves_num_steps_csv"])
    rate = data[(data["kind"] == "winning_rate") & (data["metric"] == "stability")
                & (data["panel"] == "drawbench, lr=100")]
    assert rate.set_index("x")["value"].to_dict() == {5.0: 0.5, 10.0: 0.75}  # 1/2 and (1 + tie)/2, as in the tables
    mean = data[(data["kind"] == "mean") & (data["series"] == "optimized") & (data["metric"] == "stability")
                & (data["panel"] == "drawbench, lr=10")]
    assert mean.set_index("x")["value"].to_dict() == pytest.approx({5.0: 0.15, 10.0: 0.45})
    trace = pd.read_csv(result.files["stability_trace_csv"])
    assert len(trace) == 4 * 2 and set(trace["n"]) == {2}  # 4 settings x 2 steps, 2 prompts each
    last = trace[(trace["setting"] == "num_steps=10 lr=10") & (trace["step"] == 1)].iloc[0]
    assert (last["median"], last["min"], last["max"]) == pytest.approx((0.4, 0.3, 0.5))
    assert "stability_trace.png" in result.markdown.read_text()
