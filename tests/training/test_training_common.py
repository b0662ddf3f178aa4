"""The training package: the committed weights keep their names, the shapes stage table reads as `make train-shapes`
ran it, and the training CLIs' mistakes are one line."""
from __future__ import annotations

import pytest

from noise_exp.config import PROJECT_ROOT
from noise_exp.training.common import training_id
from noise_exp.studies.common import study_config
from noise_exp.studies.train_shapes import read_stages
from noise_exp.training.shapes import Stage, main


def test_the_committed_weights_keep_their_training_ids():
    """Studies name the weights they used by training_id (sha256 of training.json): moving the code changes none."""
    weights = PROJECT_ROOT / "weights"
    ids = {name: training_id(weights / name) for name in ("small-digits", "small-shapes", "small-shapes-l",
                                                         "shapes-reward")}
    assert ids == {"small-digits": "dcc0ace0dfa5", "small-shapes": "8c2980b906ea", "small-shapes-l": "c1ed7a1fa1ae",
                   "shapes-reward": "db88eb1bf22b"}


def test_the_stage_table_is_the_committed_models_three_stages():
    """conf/study/train_shapes.yaml holds the six calls the Makefile's train-shapes made before."""
    cache = PROJECT_ROOT / ".cache"
    expected = []
    for size, steps, stop_after, batch in ((32, 2000, 1412, 128), (64, 1800, 1095, 64)):
        stage1, stage2 = cache / f"shapes-stage1-{size}", cache / f"shapes-stage2-{size}"
        expected += [Stage(size, out=stage1, force=True),
                     Stage(size, out=stage2, continue_from=stage1, seed=1, lr=5e-4, steps=steps, force=True),
                     Stage(size, continue_from=stage2, seed=2, lr=4e-4, steps=2200, stop_after=stop_after,
                           batch_size=batch, force=True)]
    assert read_stages(study_config("train_shapes").stages) == expected


@pytest.mark.parametrize("argv, message", [
    ([], "--size is required"),
    (["--size", "32", "--continue-from", "x", "--out", "x"], "--continue-from x is the output folder too"),
])
def test_shapes_training_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_a_stage_row_with_an_unknown_key_is_one_line(capsys):
    from noise_exp.studies.__main__ import main as study

    assert study(["train_shapes", "stages=[{size: 32, stepz: 3}]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage 1 of the table" in err and "stepz" in err, err


@pytest.mark.parametrize("module, argv, message", [
    ("digits", ["--threads", "0"], "--threads must be >= 1, got 0"),
    ("digits", ["--unet-steps", "-1"], "--unet-steps must be >= 1, got -1"),
    ("shapes", ["--size", "32", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ("shapes_reward", ["--threads", "-2"], "--threads must be >= 1, got -2"),
])
def test_bad_counts_are_one_line_before_any_training(module, argv, message, tmp_path, capsys):
    from importlib import import_module

    out = tmp_path / "out"
    assert import_module(f"noise_exp.training.{module}").main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not out.exists()
