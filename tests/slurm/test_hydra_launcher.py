"""conf/hydra/launcher/slurm_local.yaml drives a Hydra multirun through the local SLURM cluster (a stand-in
task, independent of the models; killed jobs inside a sweep are covered by test_sweep_e2e.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .cluster_utils import final_sacct_states, submitted_job_ids

REPO = Path(__file__).resolve().parents[2]
APP = Path(__file__).parent / "hydra_app" / "app.py"

# One local cluster per machine, started and stopped by a session fixture: on one xdist worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("slurm_cluster")


def start_multirun(sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, str(APP), "-m", f"hydra.searchpath=[file://{REPO / 'conf'}]",
           "hydra/launcher=slurm_local", f"hydra.sweep.dir={sweep_dir}", *overrides]
    return subprocess.Popen(cmd, cwd=sweep_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL)


def array_job_id(sweep_dir: Path) -> str:
    (job_id,) = submitted_job_ids(sweep_dir)
    return job_id


@pytest.mark.timeout(300)
def test_three_job_multirun_completes(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = start_multirun(sweep, "x=1,2,3")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    done = sorted((sweep / str(i) / "done.txt").read_text().split()[0] for i in range(3))
    assert done == ["1", "2", "3"]
    states = final_sacct_states(array_job_id(sweep), tasks=3)
    assert sorted(states.values()) == ["COMPLETED"] * 3, states
