"""A Hydra callback that records how each job of a sweep ended, so a sweep with failed jobs names them all.

In a sweep a job's user error fails only that job (`runner.run_cli` raises instead of exiting); Hydra's basic
launcher runs the other jobs of the batch, then re-raises the first failure. The entry (`noise_exp.cli.run_hydra`)
then prints `failed_jobs_summary()`: every failed job's number, the overrides that set it apart and its reason.
Registered in conf/config.yaml under `hydra.callbacks`. With a launcher that runs jobs in other processes
(submitit, SLURM) the jobs end there, so only the failure Hydra re-raises is reported.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from noise_exp.errors import NoiseExpError

log = logging.getLogger(__name__)

MAX_LISTED = 5  # failed jobs named in the summary line; the rest are counted


@dataclass(frozen=True)
class JobOutcome:
    num: int
    overrides: tuple[str, ...]
    error: str | None  # None when the job finished


# The jobs of this process's current sweep, in launch order. Module state because Hydra builds the callback
# itself and the entry reads what it recorded.
_jobs: list[JobOutcome] = []


class RecordSweepJobs(Callback):
    """`hydra.callbacks` entry: remembers each sweep job's overrides and, if it failed, why (also logged to the
    job's log file)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _jobs.clear()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        error = None
        if job_return.status == JobStatus.FAILED:
            # `return_value` would re-raise (and print to stderr); a failed job stores its exception here
            error = _reason(job_return._return_value)
            log.error("job #%d failed: %s", config.hydra.job.num, error)
        _jobs.append(JobOutcome(int(config.hydra.job.num), tuple(job_return.overrides or ()), error))


def _reason(error: BaseException) -> str:
    if isinstance(error, NoiseExpError):
        return str(error)
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def failed_jobs_summary() -> str | None:
    """One line naming the failed jobs of the last sweep, or None if none failed."""
    failed = [job for job in _jobs if job.error is not None]
    if not failed:
        return None
    shared = set.intersection(*(set(job.overrides) for job in _jobs))
    listed = [f"{_label(job, shared)}: {job.error}" for job in failed[:MAX_LISTED]]
    if len(failed) > MAX_LISTED:
        listed.append(f"and {len(failed) - MAX_LISTED} more (see each job's log)")
    return f"{len(failed)} of {len(_jobs)} jobs failed: " + "; ".join(listed)


def _label(job: JobOutcome, shared: set[str]) -> str:
    """`#2 (model.num_steps=0)`: the job's number and the overrides that differ from the other jobs'."""
    own = [o for o in job.overrides if o not in shared] or list(job.overrides)
    return f"#{job.num} ({' '.join(own)})" if own else f"#{job.num}"
