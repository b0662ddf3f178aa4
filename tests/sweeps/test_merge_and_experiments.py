"""Experiment configs compose; the merge step joins a sweep's runs; the benchmark writes its figures."""
import csv
import os
import pytest

from noise_exp.benchmark import main as bench_main
from noise_exp.merge import merge_runs
from tests.conftest import compose_cfg


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


def test_merge_joins_the_runs_of_a_sweep_into_one_table_and_report(tmp_path):
    from tests.support.runs import write_synthetic_run

    sweep = tmp_path / "sweep"
    write_synthetic_run(sweep / "0", {"drawbench": ["a cat", "a dog"]}, ("stable", "unstable"), seed=0)
    write_synthetic_run(sweep / "1", {"pickapic": ["a fox"]}, ("stable", "unstable"), seed=1)
    out = merge_runs(sweep)
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["run"], r["dataset"], r["variant"]) for r in rows] == [
        ("0", "drawbench", "stable"), ("0", "drawbench", "unstable"), ("0", "drawbench", "stable"),
        ("0", "drawbench", "unstable"), ("1", "pickapic", "stable"), ("1", "pickapic", "unstable")]
    assert all((out / r["image"]).is_file() for r in rows)  # paths stay valid from the merged folder
    assert (out / "report" / "report.md").is_file()
    assert merge_runs(sweep) == out  # a second merge ignores the first one's folder
    with open(out / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_benchmark_writes_csv_markdown_and_plot(tmp_path):
    bench_main(["--K", "2", "--steps", "1", "--batch-sizes", "1", "2", "--no-scaling", "--repeats", "1", "--out", str(tmp_path)])
    with open(tmp_path / "bench.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["experiment"] for r in rows] == ["select", "select", "optimize", "generate+invert"]
    select = rows[0]
    assert int(select["unet_calls"]) == 2 * 12  # K x T x (2 CFG passes + 1 inversion pass) with T=4
    assert 0.3 < float(select["overhead"]) < 5.0
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert "ms per candidate" in (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize("target,args,folder", [
    ("fig8", ["SWEEP_DIR=/tmp/sweeps/fig8-small"], "/tmp/sweeps/fig8-small"),
    ("table1", ["HYDRA_ARGS=dataset.limit=2 hydra.sweep.dir=/tmp/sweeps/t1"], "/tmp/sweeps/t1"),
    ("table2", [], "multirun/table2"),
])
def test_paper_targets_merge_the_sweep_folder_they_ran(target, args, folder):
    import subprocess

    from tests.conftest import ROOT

    # under `make test` the parent make's MAKELEVEL would add "make[1]: Entering directory" lines to the plan
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    planned = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", target, *args], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert planned[-2].split()[-1] == f"hydra.sweep.dir={folder}"
    assert planned[-2].count("hydra.sweep.dir=") == 1
    assert planned[-1].endswith(f"-m noise_exp.merge {folder}")


def test_experiment_job_folders_are_named_by_result_determining_overrides():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from noise_exp.config import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=[
            "experiment=fig8", "evaluator=[hpsv2,aes]", "logger=wandb", "model.num_steps=5", "dataset=pickapic",
            "method.lr=0.1", "dataset.shard_index=1", "save_images=[optimized]", "+model.extra=[a,b]"])
    assert OmegaConf.select(cfg, "hydra.sweep.subdir") == (
        "model.num_steps=5,dataset=pickapic,method.lr=0.1,dataset.shard_index=1,model.extra=a+b")
