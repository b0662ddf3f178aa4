"""`run.py` end to end in a subprocess: the files of the run folder and resume (bad inputs and faults: the fault
matrix in tests/run_integrity)."""
from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.run_integrity.helpers import without_measures


pytestmark = pytest.mark.slow


def run_app(*overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_select_writes_the_run_folder_and_resumes(tmp_path):
    run_dir = tmp_path / "select"
    args = ["model=tiny_sdxl", "method=select", "method.num_seeds=5", "method.batch_size=3", "dataset=drawbench",
            "dataset.limit=2", f"hydra.run.dir={run_dir}"]
    done = run_app(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"results: {run_dir / 'results.csv'}" in done.stdout
    rows = read_csv(run_dir / "results.csv")
    assert [(r["prompt_id"], r["variant"]) for r in rows] == [("0", "stable"), ("0", "unstable"), ("1", "stable"), ("1", "unstable")]
    scores = read_csv(run_dir / "selection_scores.csv")
    assert len(scores) == 10 and {r["seed"] for r in scores} == {str(s) for s in range(5)}
    for prompt_id in ("0", "1"):
        mine = {r["seed"]: float(r["stability"]) for r in scores if r["prompt_id"] == prompt_id}
        stable = next(r for r in rows if r["prompt_id"] == prompt_id and r["variant"] == "stable")
        unstable = next(r for r in rows if r["prompt_id"] == prompt_id and r["variant"] == "unstable")
        assert mine[stable["seed"]] == max(mine.values()) == float(stable["stability"])
        assert mine[unstable["seed"]] == min(mine.values())
    for r in rows:
        assert (run_dir / r["image"]).is_file() and r["image"] == f"images/{r['prompt_id']}_{r['variant']}.png"
        noise = torch.load(run_dir / r["noise"])
        assert noise.shape == (4, 16, 16) and torch.isfinite(noise).all()
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    (run_dir / "prompts" / "1.json").unlink()  # as if the job had been killed before prompt 1 finished
    again = run_app(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "(1 already done)" in again.stdout
    assert without_measures(read_csv(run_dir / "results.csv")) == without_measures(rows)


def test_optimize_writes_trace_original_and_optimized(tmp_path):
    run_dir = tmp_path / "optimize"
    done = run_app("model=tiny_sd", "method=optimize", "method.steps=3", "method.lr=1000", "prompt=a watercolor fox",
                   "logger=wandb", "logger.mode=offline", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_csv(run_dir / "results.csv")
    assert [r["variant"] for r in rows] == ["original", "optimized"] and rows[0]["prompt"] == "a watercolor fox"
    trace = read_csv(run_dir / "optimization_trace.csv")
    assert [int(r["step"]) for r in trace] == [0, 1, 2, 3]
    assert float(trace[0]["lr"]) == 1000.0 and float(trace[0]["stability"]) == pytest.approx(float(rows[0]["stability"]))
    assert float(trace[-1]["stability"]) == pytest.approx(float(rows[1]["stability"]))
    assert not torch.equal(torch.load(run_dir / rows[0]["noise"]), torch.load(run_dir / rows[1]["noise"]))
    assert (run_dir / "images" / "0_optimized.png").is_file()
    offline_runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline_runs) == 1 and offline_runs[0].stat().st_size > 1000  # the job's W&B log, written offline
