"""docs/extending.md's "add a model family": an adapter in the test tree (my_family.py) plus one yaml, run through
run.py with no other file touched. Its guidance-free DDIM must give exactly what the built-in SD adapter gives with
CFG off (`model.guidance_scale=1.0`) on the same weights: the same stabilities, selected seeds and images."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd

from noise_exp.runner import run_experiment
from tests.conftest import compose_cfg
from tests.extending import REPO, named_in_project

COMMAND = ('python run.py "hydra.searchpath=[file://tests/extending/conf]" model=guidance_free_sd '
           'dataset.limit=2 method.num_seeds=3')  # the doc's command


def test_a_model_family_added_as_one_module_and_one_yaml_runs_and_equals_the_built_in_adapter(tmp_path):
    run_dir = tmp_path / "family"
    argv = [sys.executable, *COMMAND.replace('"', "").split()[1:], "save_noise=false", f"hydra.run.dir={run_dir}"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "noise-exp: 2 prompts" in done.stdout + done.stderr
    reference = tmp_path / "built_in"
    run_experiment(compose_cfg(["model=tiny_sd", "model.guidance_scale=1.0", "dataset.limit=2", "method.num_seeds=3",
                                "save_noise=false"]), reference)
    columns = ["prompt_id", "variant", "seed", "stability", "unet_calls"]
    ours, theirs = (pd.read_csv(folder / "results.csv")[columns] for folder in (run_dir, reference))
    assert len(ours) == 4 and ours.equals(theirs)
    assert (run_dir / "selection_scores.csv").read_bytes() == (reference / "selection_scores.csv").read_bytes()
    images = sorted(p.name for p in (run_dir / "images").glob("*.png"))
    assert images == ["0_stable.png", "0_unstable.png", "1_stable.png", "1_unstable.png"]
    assert all((run_dir / "images" / name).read_bytes() == (reference / "images" / name).read_bytes() for name in images)
    assert named_in_project("guidance_free_sd", "GuidanceFreeDDIM") == []
