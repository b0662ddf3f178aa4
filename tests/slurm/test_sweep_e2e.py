"""`python run.py -m hydra/launcher=slurm_local ...` on the tiny model, through the local SLURM cluster."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .cluster_utils import final_sacct_states, submitted_job_ids, wait_until

REPO = Path(__file__).resolve().parents[2]
TINY = ["model=tiny_sdxl", "model.height=64", "model.width=64", "method=select", "method.num_seeds=2",
        "method.batch_size=2", "evaluator=none"]

# One local cluster per machine, started and stopped by a session fixture: on one xdist worker (--dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm_cluster")]


def start_sweep(sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "run.py", "-m", "hydra/launcher=slurm_local", f"hydra.sweep.dir={sweep_dir}",
           *TINY, *overrides]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen, timeout_s: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        proc.kill()
    return out


def job_states(sweep_dir: Path, tasks_per_job: int = 1) -> list[str]:
    return sorted(state.split()[0] for job in submitted_job_ids(sweep_dir)
                  for state in final_sacct_states(job, tasks=tasks_per_job).values())


@pytest.mark.timeout(600)
def test_three_shard_sweep_completes_and_merges_every_prompt_once(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = start_sweep(sweep, "dataset=drawbench", "dataset.limit=3", "dataset.num_shards=3",
                       "dataset.shard_index=0,1,2")
    out = finish(proc, 540)
    assert proc.returncode == 0, out[-4000:]
    assert job_states(sweep, tasks_per_job=3) == ["COMPLETED"] * 3
    assert all(len(pd.read_csv(sweep / str(job) / "results.csv")) == 2 for job in range(3))  # 1 prompt each

    merge = subprocess.run([sys.executable, "-m", "noise_exp.merge", str(sweep)], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    merged = pd.read_csv(sweep / "merged" / "results.csv")
    assert sorted(merged["prompt_id"].unique()) == [0, 1, 2]
    assert not merged.duplicated(["prompt_id", "variant"]).any()  # every prompt exactly once
    assert set(merged["variant"]) == {"stable", "unstable"} and len(merged) == 6


@pytest.mark.timeout(600)
def test_killed_job_fails_fast_and_the_rerun_finishes_only_missing_prompts(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    overrides = ("dataset=drawbench", "dataset.limit=3")
    proc = start_sweep(sweep, *overrides)
    records = sweep / "0" / "prompts"
    wait_until(lambda: records.is_dir() and any(records.glob("*.json")), 300, "the first finished prompt")
    # the job's own Python process, found by the submitit folder of this sweep in its command line
    pids = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep}/"], capture_output=True,
                          text=True).stdout.split()
    assert pids, "job process not found"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    killed_at = time.monotonic()
    out = finish(proc, 120)  # the sweep must end, not wait forever
    assert proc.returncode != 0, out[-4000:]
    print(f"sweep ended {time.monotonic() - killed_at:.1f}s after the kill")
    assert job_states(sweep) == ["FAILED"]

    done_before = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 1 <= len(done_before) < 3
    proc = start_sweep(sweep, *overrides)
    out = finish(proc, 540)
    assert proc.returncode == 0, out[-4000:]
    after = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert len(after) == 3
    assert {name: after[name] for name in done_before} == done_before  # finished prompts were not redone
    results = pd.read_csv(sweep / "0" / "results.csv")
    assert sorted(results["prompt_id"].unique()) == [0, 1, 2]
    assert not results.duplicated(["prompt_id", "variant"]).any()
    assert sorted(job_states(sweep)) == ["COMPLETED", "FAILED"]
