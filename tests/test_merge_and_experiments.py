"""Experiment configs compose; the merge step joins a sweep's runs; the benchmark writes its figures."""
import csv
import subprocess
import sys

import pytest

from noise_exp.benchmark import main as bench_main
from noise_exp.merge import merge_runs
from tests.conftest import ROOT, compose_cfg


@pytest.mark.parametrize("experiment,model,target", [
    ("table1", "sdxl_turbo", "noise_exp.methods.NoiseSelection"),
    ("table2", "sdxl", "noise_exp.methods.NoiseOptimization"),
    ("fig8", "sdxl", "noise_exp.methods.NoiseOptimization"),
])
def test_experiments_compose_to_the_paper_settings(experiment, model, target):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg.model.name == model and cfg.method._target_ == target
    assert sorted(cfg.evaluator) == ["aes", "hpsv2", "imagereward", "pickscore"]
    if experiment == "table2":
        assert (cfg.method.steps, cfg.method.lr, cfg.method.momentum, cfg.model.num_steps) == (100, 100.0, 0.5, 10)


@pytest.mark.slow
def test_a_sharded_sweep_merges_into_one_table_with_every_prompt_once(tmp_path):
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "run.py", "-m", "model=tiny_sd", "method=baseline", "dataset.limit=5", "dataset.num_shards=2",
         "dataset.shard_index=0,1", "save_noise=false", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = merge_runs(sweep)
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["prompt_id"]) for r in rows) == [0, 1, 2, 3, 4]
    assert {r["run"] for r in rows} == {"0", "1"}
    assert all((out / r["image"]).is_file() for r in rows)
    assert (out / "report" / "report.md").is_file()


def test_benchmark_writes_csv_markdown_and_plot(tmp_path):
    bench_main(["--K", "2", "--steps", "1", "--batch-sizes", "1", "2", "--no-scaling", "--out", str(tmp_path)])
    with open(tmp_path / "bench.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["experiment"] for r in rows] == ["select", "select", "optimize", "generate+invert"]
    select = rows[0]
    assert int(select["unet_calls"]) == 2 * 12  # K x T x (2 CFG passes + 1 inversion pass) with T=4
    assert 0.3 < float(select["overhead"]) < 5.0
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert "ms per candidate" in (tmp_path / "bench.md").read_text()
