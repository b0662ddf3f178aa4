"""`python -m noise_exp.score <run_dir> evaluator=[shapes_geneval]` on run folders without images: one line, exit 2."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from noise_exp import score as score_cli
from tests.support import runs


def _no_images_folder(run):
    shutil.rmtree(run / "images")


def _no_image_paths(run):
    frame = pd.read_csv(run / "results.csv")
    frame["image"] = ""
    frame.to_csv(run / "results.csv", index=False)


def _no_results(run):
    (run / "results.csv").unlink()


@pytest.mark.parametrize("damage, message", [
    (_no_images_folder, "image file not found: {run}/images/0_stable.png"),
    (_no_image_paths, "{run} has no images to score (it was run with save_images=[])"),
    (_no_results, "{run}/results.csv does not exist: not a finished run folder"),
])
def test_a_run_folder_without_images_is_one_line_and_exit_2(tmp_path, capsys, damage, message):
    run = runs.write_synthetic_run(tmp_path / "run", {"shapes_bench": ["a circle", "a green square"]},
                                      ("stable", "unstable"))
    damage(run)
    assert score_cli.main([str(run), "evaluator=[shapes_geneval]"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: " + message.format(run=run))
