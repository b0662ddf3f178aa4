"""`run.py model=tiny_sv3d dataset=omniobject3d method=optimize` end to end: run folder, Table 3 and strips."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from tests.conftest import ROOT
from tests.support.scorers import tiny_open_clip_config
from tests.models.sv3d.conftest import FIXTURE_OBJECTS

pytestmark = pytest.mark.slow
VIEWS = 4


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """(open_clip model config, state dict) of a tiny random CLIP for the CLIP-S scorer."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    config = tiny_open_clip_config(folder)
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "tiny_clip.bin"
    torch.save(open_clip.create_model(config.stem, pretrained=None).state_dict(), checkpoint)
    return config, checkpoint


def test_optimize_on_orbits_writes_table3_and_strips(tmp_path, orbit_dir, tiny_clip):
    run_dir = tmp_path / "run"
    config, checkpoint = tiny_clip
    args = ["model=tiny_sv3d", "dataset=omniobject3d", f"dataset.path={orbit_dir}", "method=optimize",
            "method.steps=2", "method.lr=1500", "evaluator=[lpips,ssim,clip_s]", "evaluator.lpips.random_backbone=true",
            f"evaluator.clip_s.checkpoint={checkpoint}", f"evaluator.clip_s.arch={config}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"report: {run_dir / 'table3' / 'table3.md'}" in done.stdout

    results = read_csv(run_dir / "results.csv")
    assert [r["variant"] for r in results] == ["original", "optimized"] * FIXTURE_OBJECTS
    for original, optimized in zip(results[::2], results[1::2]):
        assert float(optimized["stability"]) > float(original["stability"])
        assert torch.load(run_dir / original["noise"]).shape == (VIEWS, 4, 8, 8)
        assert Image.open(run_dir / original["image"]).size == (VIEWS * 64, 64)

    per_view = read_csv(run_dir / "table3" / "per_view.csv")
    assert len(per_view) == FIXTURE_OBJECTS * 2 * VIEWS
    assert [int(r["frame"]) for r in per_view[:VIEWS]] == [21, 42, 63, 0]  # every 84 / 4 frames; the last is the input
    for row in per_view:
        assert 0.0 <= float(row["lpips"]) and -1.0 <= float(row["ssim"]) <= 1.0 and -1.0 <= float(row["clip_s"]) <= 1.0

    per_object = read_csv(run_dir / "table3" / "per_object.csv")
    first = [r for r in per_view if r["prompt_id"] == per_object[0]["prompt_id"] and r["variant"] == per_object[0]["variant"]]
    assert float(per_object[0]["ssim"]) == pytest.approx(sum(float(r["ssim"]) for r in first) / VIEWS)

    table = read_csv(run_dir / "table3" / "table3.csv")
    assert [r["Noise"] for r in table] == ["Original Noise", "Opti. Noise"]
    assert list(table[0]) == ["Model", "Noise", "LPIPS ↓", "SSIM ↑", "CLIP-S ↑", "Stability ↑", "Objects"]
    assert table[0]["Model"] == "tiny_sv3d" and table[0]["Objects"] == str(FIXTURE_OBJECTS)
    optimized_objects = [r for r in per_object if r["variant"] == "optimized"]
    assert float(table[1]["LPIPS ↓"]) == pytest.approx(sum(float(r["lpips"]) for r in optimized_objects) / FIXTURE_OBJECTS)
    assert "| tiny_sv3d | Opti. Noise |" in (run_dir / "table3" / "table3.md").read_text()

    strips = sorted((run_dir / "table3" / "strips").glob("*.png"))
    assert [p.stem for p in strips] == sorted(r["prompt_id"] for r in results[::2])
    # rows: ground truth, original, optimized; columns: label, input view, the views
    assert Image.open(strips[0]).size == ((2 + VIEWS) * 64, 3 * 64 + 2 * 2)
