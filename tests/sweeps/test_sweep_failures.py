"""A local sweep in which jobs fail: the other jobs still run, and the sweep ends naming every failed job."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from noise_exp import sweep_callbacks
from noise_exp.errors import NoiseExpError
from tests.conftest import ROOT


@pytest.mark.slow
def test_failed_jobs_are_named_and_the_others_still_run(tmp_path):
    """Job 0 leaves `dataset.path: ???` unset, job 1 too, job 2 runs, job 3 selects no prompt."""
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "run.py", "-m", "model=tiny_sdxl", "method.num_seeds=2", "dataset.limit=1",
         "dataset=prompts,drawbench", "dataset.offset=0,1000", "save_images=[]", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    unset = "dataset.path is not set: add dataset.path=<value> to the command"
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: 3 of 4 jobs failed: #0 (dataset=prompts dataset.offset=0): {unset}; "
        f"#1 (dataset=prompts dataset.offset=1000): {unset}; #3 (dataset=drawbench dataset.offset=1000): "
        f"no prompts to run from {ROOT / 'datasets' / 'drawbench.csv'} (offset=1000, limit=1, shard 0/1)")
    assert "Traceback" not in done.stderr
    assert (sweep / "2" / "results.csv").is_file()  # the job after the first failures ran
    assert not (sweep / "3" / "results.csv").exists()
    assert f"job #0 failed: {unset}" in (sweep / "0" / "run.log").read_text()
    merge_names_the_unfinished_jobs(sweep)


def merge_names_the_unfinished_jobs(sweep):
    """`noise_exp.merge` on that sweep: refused naming each failed job and its overrides (and a job whose folder
    is gone as never started), unless --allow-missing, which merges job 2 alone."""
    import shutil

    from noise_exp.merge import main, unfinished_jobs

    failed = "has no results.csv (failed or still running: see its run.log)"
    assert unfinished_jobs(sweep) == [f"job 0 (dataset=prompts dataset.offset=0) {failed}",
                                      f"job 1 (dataset=prompts dataset.offset=1000) {failed}",
                                      f"job 3 (dataset=drawbench dataset.offset=1000) {failed}"]
    shutil.rmtree(sweep / "3")
    assert unfinished_jobs(sweep)[-1] == "job #3 (dataset=drawbench dataset.offset=1000) never started"
    assert main([str(sweep), "--no-tracker"]) == 2 and not (sweep / "merged").exists()
    assert main([str(sweep), "--no-tracker", "--allow-missing"]) == 0
    merged = pd.read_csv(sweep / "merged" / "results.csv", dtype={"run": str})
    assert set(merged["run"]) == {"2"} and len(merged) == 2  # job 2's stable and unstable


def end_job(callback: sweep_callbacks.RecordSweepJobs, num: int, overrides: list[str], error: Exception | None):
    config = OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN, "job": {"num": num}}})
    job = JobReturn(overrides=overrides, status=JobStatus.FAILED if error else JobStatus.COMPLETED,
                    _return_value=error or 0.5)
    callback.on_job_end(config=config, job_return=job)


def test_summary_lists_the_overrides_that_differ_and_counts_the_rest():
    callback = sweep_callbacks.RecordSweepJobs()
    callback.on_multirun_start(config=OmegaConf.create({}))
    for num in range(8):
        error = NoiseExpError(f"bad {num}") if num else None
        end_job(callback, num, ["dataset.limit=2", f"method.lr={num}", "model.num_steps=5"], error)
    assert sweep_callbacks.failed_jobs_summary() == (
        "7 of 8 jobs failed: #1 (method.lr=1): bad 1; #2 (method.lr=2): bad 2; #3 (method.lr=3): bad 3; "
        "#4 (method.lr=4): bad 4; #5 (method.lr=5): bad 5; and 2 more (see each job's log)")
    callback.on_multirun_start(config=OmegaConf.create({}))
    end_job(callback, 0, ["model.num_steps=0"], ValueError("not a user error\nsecond line"))
    assert sweep_callbacks.failed_jobs_summary() == \
        "1 of 1 jobs failed: #0 (model.num_steps=0): ValueError: not a user error"
    callback.on_multirun_start(config=OmegaConf.create({}))
    end_job(callback, 0, [], None)
    assert sweep_callbacks.failed_jobs_summary() is None
