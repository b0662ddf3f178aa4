"""Bounded waits and sacct queries shared by the SLURM tests."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Callable

TERMINAL_FAILED = ("FAILED", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT")


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def sacct_states(job_id: str) -> dict[str, str]:
    """JobID -> State of the allocations of a job (array tasks included), as the accounting DB has them."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job_id.split("_")[0]],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def wait_sacct_state(job_id: str, timeout_s: float = 60) -> str:
    """The job's final state in sacct (records reach slurmdbd a moment after the job ends)."""
    state = ""

    def final() -> bool:
        nonlocal state
        state = sacct_states(job_id).get(job_id, "")
        return state.split()[0:1] != [] and state.split()[0] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING")

    wait_until(final, timeout_s, f"a final sacct state of job {job_id}")
    return state


def submitted_job_ids(sweep_dir: Path) -> list[str]:
    """SLURM job ids of a submitit sweep, from its `.submitit/<jobid>_<task>` folders (other entries ignored)."""
    names = (p.name for p in (Path(sweep_dir) / ".submitit").iterdir() if p.is_dir())
    return sorted({m.group(1) for m in map(re.compile(r"^(\d+)(?:_\d+)?$").match, names) if m})


def final_sacct_states(job_id: str, timeout_s: float = 60, tasks: int = 1) -> dict[str, str]:
    """sacct states of the `tasks` allocations of a job once none is still pending/running.

    The DB lags the job's end, task by task: on a loaded machine it listed one task of a finished three-task array
    while the other two records were still on their way, so wait until all `tasks` are there.
    """
    states: dict[str, str] = {}

    def final() -> bool:
        nonlocal states
        states = sacct_states(job_id)
        return len(states) >= tasks and all(s.split()[0] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING")
                                    for s in states.values())

    wait_until(final, timeout_s, f"final sacct states of job {job_id}")
    return states
