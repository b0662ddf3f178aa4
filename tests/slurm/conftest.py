"""A real one-node SLURM cluster (scripts/slurm_local.sh) for the tests in this folder.

The session fixture starts the cluster unless one already answers, and stops it at the end only
if it started it, so a developer's running cluster is reused and left alone.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch", "sacct")
UP_TIMEOUT_S = 600  # first run installs the Debian packages


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """Environment of a running local cluster: {"SLURM_CONF": ..., "partition": ...}."""
    missing = [d for d in DAEMONS if shutil.which(d, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing and os.geteuid() != 0:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing) and not root, so "
                    "scripts/slurm_local.sh cannot install it")
    started_here = _script("status", timeout=60).returncode != 0
    if started_here:
        try:
            up = _script("up", timeout=UP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            up = None
        if up is None or up.returncode != 0:
            _script("down", timeout=120)  # leave no half-started daemons behind
            pytest.fail("scripts/slurm_local.sh up failed" + (f":\n{up.stderr[-3000:]}" if up else
                                                              f" to finish within {UP_TIMEOUT_S}s"))
    env_lines = _script("env", timeout=30).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in env_lines.splitlines()
               if line.startswith("export "))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield {**env, "partition": os.environ.get("NOISE_EXP_SLURM_PARTITION", "local")}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if started_here:
            _script("down", timeout=120)
