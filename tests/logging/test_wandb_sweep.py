"""A real 2x2 sweep tracked by W&B offline, read back from its `.wandb` files: the merge step's summary run is in
the jobs' group and holds one winning rate per setting, keyed and charted by the swept keys, numbers as numbers."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from noise_exp.merge import main as merge_main
from tests.conftest import ROOT
from tests.logging.wandb_files import logged_tables, offline_runs, run_record, summary_values

SETTINGS = [(2, 30), (2, 300), (3, 30), (3, 300)]  # (model.num_steps, method.lr)


@pytest.fixture(autouse=True)
def isolated_wandb(monkeypatch, tmp_path):
    from tests.logging.wandb_files import isolate_wandb

    isolate_wandb(monkeypatch, tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.mark.slow
def test_sweep_summary_run_holds_one_winning_rate_per_setting(tmp_path):
    """4 jobs of 1 prompt, 2 optimization steps on small_digits (~20 s of CPU), then the merge step."""
    sweep = tmp_path / "sweep"
    command = [sys.executable, "run.py", "-m", "model=small_digits", "method=optimize", "dataset=digits",
               "dataset.limit=1", "method.steps=2", "model.num_steps=2,3", "method.lr=30,300", "logger=wandb",
               "evaluator=[digit_classifier]", "save_noise=false", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert merge_main([str(sweep)]) == 0  # the merge step, in this process: W&B offline as in a job

    jobs = {}
    for job in sorted(p for p in sweep.iterdir() if (p / "results.csv").is_file() and p.name != "merged"):
        [(folder, records)] = offline_runs(job)
        jobs[run_record(records).display_name] = (run_record(records), summary_values(records))
    assert sorted(jobs) == sorted(f"num_steps={t},lr={lr}" for t, lr in SETTINGS)  # readable names
    groups = {run.run_group for run, _ in jobs.values()}
    [(folder, records)] = offline_runs(sweep / "merged")
    summary_run, summary = run_record(records), summary_values(records)
    assert summary_run.job_type == "summary" and groups == {summary_run.run_group}  # the summary joins its jobs

    results = pd.read_csv(sweep / "merged" / "results.csv")
    for name, (_, job_summary) in jobs.items():  # a job's summary holds means, not its last prompt's values
        steps, lr = (float(part.split("=")[1]) for part in name.split(","))
        rows = results[(results["num_steps"] == steps) & (results["lr"] == lr) & (results["variant"] == "optimized")]
        assert job_summary["optimized/stability"] == pytest.approx(rows["stability"].mean())

    rates = pd.read_csv(sweep / "merged" / "report" / "winning_rates.csv")
    assert len(rates) == 4 * 2  # 4 settings x (digit_classifier, stability), optimized vs original
    for metric in ("digit_classifier", "stability"):
        keyed = {key: value for key, value in summary.items()
                 if key.startswith("winning_rate/") and key.endswith(f"/digits_optimized_original/{metric}")}
        expected = {f"winning_rate/num_steps={t},lr={lr}/digits_optimized_original/{metric}":
                    rates[(rates["num_steps"] == t) & (rates["lr"] == lr) & (rates["metric"] == metric)]
                    ["win_rate"].item() for t, lr in SETTINGS}
        assert keyed == pytest.approx(expected)  # four keys, each its own setting's rate
    assert summary["means/num_steps=3,lr=300/digits/optimized/stability"] == pytest.approx(
        results[(results["num_steps"] == 3) & (results["lr"] == 300) & (results["variant"] == "optimized")]
        ["stability"].mean())

    tables = logged_tables(records, folder)
    chart = tables["winning_rates/winning_rates/digits_optimized_original/digit_classifier_table"]
    column = pd.DataFrame(**chart).to_dict("list")
    assert column["setting"] == [f"num_steps={t},lr={lr}" for t, lr in SETTINGS]  # one bar per setting
    assert column["num_steps"] == [2, 2, 3, 3] and column["lr"] == [30, 300, 30, 300]  # numbers, not strings
    assert all(low <= rate <= high for low, rate, high in zip(column["ci_low"], column["winning_rate"],
                                                               column["ci_high"]))
    full = tables["tables/means"]
    assert isinstance(full["data"][0][full["columns"].index("num_steps")], int)
    curve = pd.DataFrame(**tables["curves/num_steps/stability_table"])  # line_series: step, lineKey, lineVal
    assert {"optimized mean (lr=30)", "optimized beats original (lr=300)"} <= set(curve["lineKey"])
    assert curve.groupby("lineKey")["step"].apply(sorted).map(tuple).unique().tolist() == [(2, 3)]
