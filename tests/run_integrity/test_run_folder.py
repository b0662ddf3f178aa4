"""Run folders that cannot lie: recorded settings, one writer, scores that survive, corrupt records, file modes.

Runs `run_experiment` in-process on the tiny SD model (K = 2-3 candidates, T = 4) so each case takes seconds.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from noise_exp.errors import NoiseExpError
from noise_exp.files import FILE_MODE
from noise_exp.rundir.lock import LOCK_NAME, RunLock
from noise_exp.runner import run_experiment
from tests.conftest import compose_cfg
from tests.run_integrity.helpers import MEAN_PIXEL, timeless

BASE = ["model=tiny_sd", "method=select", "method.num_seeds=2", "dataset=drawbench", "save_noise=false"]


def run(run_dir, *overrides):
    return run_experiment(compose_cfg(BASE + list(overrides)), run_dir)


def record_bytes(run_dir):
    return {p.name: p.read_bytes() for p in sorted((run_dir / "prompts").glob("*.json"))}


def test_resume_refuses_other_settings_and_allows_neutral_ones(tmp_path):
    run_dir = tmp_path / "run"
    run(run_dir, "dataset.limit=1")
    first = record_bytes(run_dir)
    recorded = json.loads((run_dir / "run.json").read_text())["settings"]
    assert recorded["method.num_seeds"] == 2 and recorded["model.weights"].startswith("sha256:")
    assert "method.batch_size" not in recorded and "dataset.limit" not in recorded

    with pytest.raises(NoiseExpError, match=r"method.num_seeds: 2 -> 3\)") as refused:
        run(run_dir, "dataset.limit=2", "method.num_seeds=3")
    assert "\n" not in str(refused.value) and "hydra.run.dir" in str(refused.value)
    with pytest.raises(NoiseExpError, match=r"method: NoiseSelection -> NoiseOptimization\)"):
        run_experiment(compose_cfg(["model=tiny_sd", "method=optimize", "dataset.limit=1"]), run_dir)
    with pytest.raises(NoiseExpError, match=r"model.guidance_scale: 5.0 -> 2.0"):
        run(run_dir, "dataset.limit=2", "model.guidance_scale=2.0")
    assert record_bytes(run_dir) == first  # nothing written by the refused runs

    metrics = run(run_dir, "dataset.limit=2", "method.batch_size=1", "save_images=[stable]", "model.device=cpu")
    assert metrics["num_prompts"] == 2
    after = record_bytes(run_dir)
    assert after["0.json"] == first["0.json"] and set(after) == {"0.json", "1.json"}
    frame = pd.read_csv(run_dir / "results.csv")
    assert list(frame["prompt_id"]) == [0, 0, 1, 1]


def test_changed_weights_are_refused(tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(compose_cfg(["model=tiny_sd"]).model.pretrained, weights)
    run_dir = tmp_path / "run"
    run(run_dir, "dataset.limit=1", f"model.pretrained={weights}")
    config = weights / "unet" / "config.json"
    config.write_text(config.read_text().replace("{", '{"_note": "retrained",', 1))
    with pytest.raises(NoiseExpError, match=r"model.weights: 'sha256:[0-9a-f]+' -> 'sha256:[0-9a-f]+'"):
        run(run_dir, "dataset.limit=2", f"model.pretrained={weights}")
    assert len(record_bytes(run_dir)) == 1


def test_a_second_writer_is_refused_and_the_first_keeps_its_records(tmp_path):
    run_dir = tmp_path / "run"
    run(run_dir, "dataset.limit=1")
    first = record_bytes(run_dir)
    with RunLock(run_dir):  # a live holder: this very process
        with pytest.raises(NoiseExpError, match=rf"is in use by pid {os.getpid()} on {socket.gethostname()}"):
            run(run_dir, "dataset.limit=2")
        assert (run_dir / LOCK_NAME).is_file()
    assert not (run_dir / LOCK_NAME).exists() and record_bytes(run_dir) == first
    run(run_dir, "dataset.limit=2")  # released: the next writer proceeds
    assert set(record_bytes(run_dir)) == {"0.json", "1.json"}


def test_stale_locks_are_taken_over_and_live_ones_are_not(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_file = tmp_path / LOCK_NAME
    lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "token": "x"}))
    with RunLock(tmp_path) as lock:  # the holder's process is gone
        assert json.loads(lock_file.read_text())["token"] == lock._token
    lock_file.write_text(json.dumps({"host": "node-17", "pid": 4242, "token": "y", "since": "then"}))
    with pytest.raises(NoiseExpError, match="in use by pid 4242 on node-17"):
        RunLock(tmp_path).acquire()  # another host, fresh heartbeat: may be running
    old = lock_file.stat().st_mtime - 3600
    os.utime(lock_file, (old, old))
    with RunLock(tmp_path, stale_after_s=600):  # another host, no heartbeat for an hour
        assert json.loads(lock_file.read_text())["host"] == socket.gethostname()
    assert not lock_file.exists()


def test_heartbeat_refreshes_the_lock(tmp_path):
    lock = RunLock(tmp_path, heartbeat_s=0.05).acquire()
    try:
        old = (tmp_path / LOCK_NAME).stat().st_mtime - 100
        os.utime(tmp_path / LOCK_NAME, (old, old))
        import time
        time.sleep(0.3)
        assert (tmp_path / LOCK_NAME).stat().st_mtime > old + 50
    finally:
        lock.release()


def test_scores_survive_extending_the_run_and_the_report_follows(tmp_path):
    run_dir = tmp_path / "run"
    run(run_dir, "dataset.limit=1", MEAN_PIXEL)
    scored = pd.read_csv(run_dir / "results.csv")
    assert scored["mean_pixel"].notna().all() and len(scored) == 2
    first_scores = scored["mean_pixel"].tolist()

    run(run_dir, "dataset.limit=2")  # extended without evaluators: prompt 0 keeps its scores
    extended = pd.read_csv(run_dir / "results.csv")
    assert extended["mean_pixel"].tolist()[:2] == first_scores and extended["mean_pixel"][2:].isna().all()
    means = pd.read_csv(run_dir / "report" / "means.csv")  # the report was rewritten from the new table
    assert means.loc[means["variant"] == "stable", "n"].item() == 2

    run(run_dir, "dataset.limit=2", MEAN_PIXEL)  # only the missing rows are scored
    full = pd.read_csv(run_dir / "results.csv")
    assert full["mean_pixel"].notna().all() and full["mean_pixel"].tolist()[:2] == first_scores
    for i, row in full.iterrows():
        from PIL import Image
        expected = np.asarray(Image.open(run_dir / row["image"]).convert("RGB"), dtype=np.float64).mean()
        assert row["mean_pixel"] == pytest.approx(expected, rel=1e-6)
    report = pd.read_csv(run_dir / "report" / "means.csv")
    stable = full[full["variant"] == "stable"]["mean_pixel"].mean()
    assert report.loc[report["variant"] == "stable", "mean_pixel"].item() == pytest.approx(stable)


def test_a_corrupt_record_is_moved_aside_and_recomputed(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run(run_dir, "dataset.limit=2")
    good = (run_dir / "prompts" / "1.json").read_bytes()
    (run_dir / "prompts" / "1.json").write_text('{"prompt_id": 1, "variants": [')  # torn by hand
    metrics = run(run_dir, "dataset.limit=2")
    assert metrics["num_prompts"] == 2
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1.json is corrupt" in warning[0] and "1.json.corrupt" in warning[0]
    assert (run_dir / "prompts" / "1.json.corrupt").is_file()
    recomputed = json.loads((run_dir / "prompts" / "1.json").read_bytes())
    assert timeless(recomputed) == timeless(json.loads(good))  # deterministic recompute


def test_a_changed_prompt_text_under_the_same_id_is_refused(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue ball\n")
    run_dir = tmp_path / "run"
    run(run_dir, "dataset=prompts", f"dataset.path={prompts}", "dataset.limit=1")
    prompts.write_text("a green cube\na blue ball\n")
    with pytest.raises(NoiseExpError, match=r"prompt id 0 is 'a red cube' .* but 'a green cube' in the dataset"):
        run(run_dir, "dataset=prompts", f"dataset.path={prompts}")


def test_files_get_the_users_umask(tmp_path):
    run_dir = tmp_path / "run"
    run(run_dir, "dataset.limit=1", "save_noise=true")
    for name in ("results.csv", "run.json", "selection_scores.csv", "prompts/0.json", "images/0_stable.png",
                 "noises/0_stable.pt"):
        assert (run_dir / name).stat().st_mode & 0o777 == FILE_MODE, name
    mask = os.umask(0o022)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask


def test_optimization_summary_counts_prompts_that_lost_stability(tmp_path, capsys):
    run_dir = tmp_path / "run"
    metrics = run_experiment(compose_cfg(["model=tiny_sd", "method=optimize", "method.steps=2", "dataset.limit=2",
                                          "method.lr=1e6", "method.lr_schedule=constant"]), run_dir)
    frame = pd.read_csv(run_dir / "results.csv").pivot(index="prompt_id", columns="variant", values="stability")
    worse = int((frame["optimized"] < frame["original"]).sum())
    assert metrics["less_stable_after_optimization"] == worse
    assert f"| {worse} of 2 prompts ended less stable than they started" in capsys.readouterr().out


def test_scoring_a_run_without_images_is_one_clear_line(tmp_path):
    from noise_exp.evaluators import build_evaluators
    from noise_exp.rundir.scoring import score_run

    run_dir = tmp_path / "run"
    with pytest.raises(NoiseExpError, match=r"save_images=\[\] saves none"):
        run(run_dir, "dataset.limit=1", "save_images=[]", MEAN_PIXEL)
    assert not (run_dir / "prompts").exists()  # refused before generating anything
    run(run_dir, "dataset.limit=1", "save_images=[]")
    evaluators = build_evaluators({"mean_pixel": {"_target_": "tests.run_integrity.helpers.MeanPixel"}})
    with pytest.raises(NoiseExpError, match=r"has no images to score \(it was run with save_images=\[\]\)"):
        score_run(run_dir, evaluators)
