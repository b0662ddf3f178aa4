"""submitit against the local SLURM cluster: results come back, killed jobs fail fast, sacct knows both."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit
from submitit.core.utils import UncompletedJobError

from .cluster_utils import TERMINAL_FAILED, wait_sacct_state, wait_until

# The job process unpickles these functions; by value, so it needs no import of the test package.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KILL_DETECTION_S = 90  # bound on "a killed job is reported failed"

# One local cluster per machine, started and stopped by a session fixture: on one xdist worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("slurm_cluster")


def add(a: int, b: int) -> dict:
    return {"sum": a + b, "job_id": os.environ.get("SLURM_JOB_ID")}


def sleep_forever(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def make_executor(folder: Path, partition: str) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(slurm_partition=partition, timeout_min=10, cpus_per_task=1,
                               mem_gb=1, name="noise-exp-test")
    return executor


def wait_done(job: submitit.Job, timeout_s: float) -> None:
    wait_until(job.done, timeout_s, f"submitit to see job {job.job_id} finished (state {job.state})",
               interval_s=1)


@pytest.mark.timeout(300)
def test_job_completes_and_returns_value(slurm_cluster, tmp_path):
    job = make_executor(tmp_path, slurm_cluster["partition"]).submit(add, 2, 3)
    wait_done(job, 120)
    result = job.result()
    assert result["sum"] == 5
    assert result["job_id"] == job.job_id  # it really ran as a SLURM job
    assert wait_sacct_state(job.job_id) == "COMPLETED"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["kill -9", "scancel"])
def test_killed_job_is_reported_failed_in_bounded_time(slurm_cluster, tmp_path, how):
    pid_file = tmp_path / "job.pid"
    job = make_executor(tmp_path, slurm_cluster["partition"]).submit(sleep_forever, str(pid_file))
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 120, "the job to start")
    time.sleep(1)
    killed_at = time.monotonic()
    if how == "kill -9":  # the job's own Python process dies without a word to submitit
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
    else:
        job.cancel(check=True)

    wait_done(job, KILL_DETECTION_S)
    detected_s = time.monotonic() - killed_at
    with pytest.raises(UncompletedJobError):  # after submitit's 15 s wait for a result file
        job.result()
    state = wait_sacct_state(job.job_id)
    assert state.split()[0] in TERMINAL_FAILED, state
    assert state.startswith("CANCELLED" if how == "scancel" else "FAILED"), state
    print(f"{how}: submitit saw {job.state} {detected_s:.1f}s after the kill")
