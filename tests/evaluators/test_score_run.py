"""score_run and `python -m noise_exp.score` on a synthetic run folder with tiny scorers."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from noise_exp import score as score_cli
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import build_evaluators
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.hpsv2 import HPSv2
from noise_exp.evaluators.ssim import SSIM
from noise_exp.rundir.scoring import score_run
from tests.support import runs, scorers

PROMPTS = {"drawbench": ["a photo of a cat", "a red car"], "pickapic": ["an oil painting of a green tree"]}


class MeanPixel(Evaluator):
    """A transparent scorer: the mean pixel value, so expected columns can be computed by hand."""
    name = "mean_pixel"

    def score(self, images, prompts=None, references=None):
        return torch.tensor([np.asarray(image, dtype=np.float64).mean() for image in images], dtype=torch.float32)


@pytest.fixture
def run_dir(tmp_path):
    return runs.write_synthetic_run(tmp_path / "run", PROMPTS, ("stable", "unstable"), with_reference=True)


def test_score_run_adds_columns_in_row_order_and_rewrites_atomically(run_dir, monkeypatch):
    frame = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    frame.loc[1, "image"] = ""  # a row without a saved image scores NaN
    frame.to_csv(run_dir / "results.csv", index=False)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))

    scored = score_run(run_dir, {"mean_pixel": MeanPixel(), "ssim": SSIM()})

    # results.csv replaced once, then the scorers' directions merged into metrics.json
    assert [os.path.basename(dst) for _, dst in replaced] == ["results.csv", "metrics.json"]
    assert json.loads((run_dir / "metrics.json").read_text()) == {"mean_pixel": {"higher_is_better": True},
                                                                  "ssim": {"higher_is_better": True}}
    assert not list(run_dir.glob(".results.*"))
    on_disk = pd.read_csv(run_dir / "results.csv")
    pd.testing.assert_frame_equal(on_disk, scored, check_dtype=False)
    from PIL import Image

    for index, row in on_disk.iterrows():
        if index == 1:
            assert np.isnan(row["mean_pixel"]) and np.isnan(row["ssim"])
            continue
        expected = np.asarray(Image.open(run_dir / row["image"]).convert("RGB"), dtype=np.float64).mean()
        assert row["mean_pixel"] == pytest.approx(expected, rel=1e-6)
        assert -1 < row["ssim"] < 0.5  # random images against a random reference
    assert list(on_disk.columns[:9]) == ["dataset", "prompt_id", "prompt", "variant", "seed", "stability",
                                         "image", "noise", "time_s"]


def test_score_run_overwrites_an_existing_column(run_dir):
    score_run(run_dir, {"mean_pixel": MeanPixel()})
    frame = pd.read_csv(run_dir / "results.csv")
    frame["mean_pixel"] = -1.0
    frame.to_csv(run_dir / "results.csv", index=False)
    again = score_run(run_dir, {"mean_pixel": MeanPixel()})
    assert (again["mean_pixel"] > 0).all()
    assert list(again.columns).count("mean_pixel") == 1


def test_reference_scorer_without_reference_column_is_a_clear_error(tmp_path):
    run = runs.write_synthetic_run(tmp_path / "run", PROMPTS, ("stable",))
    with pytest.raises(NoiseExpError, match="reference"):
        score_run(run, {"ssim": SSIM()})


def test_missing_results_or_image_are_clear_errors(tmp_path, run_dir):
    with pytest.raises(NoiseExpError, match="results.csv does not exist"):
        score_run(tmp_path, {"mean_pixel": MeanPixel()})
    (run_dir / "images" / "0_stable.png").unlink()
    with pytest.raises(NoiseExpError, match="0_stable.png"):
        score_run(run_dir, {"mean_pixel": MeanPixel()})


def test_cli_composes_conf_and_scores_with_local_weights(run_dir, tiny_folder, capsys):
    config, checkpoint = scorers.tiny_hps(tiny_folder)
    code = score_cli.main([str(run_dir), "evaluator=[hpsv2,ssim]", f"evaluator.hpsv2.checkpoint={checkpoint}",
                           f"evaluator.hpsv2.arch={config}", "evaluator.hpsv2.device=cpu"])
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(run_dir / "results.csv")
    assert {"hpsv2", "ssim"} <= set(frame.columns)
    expected = HPSv2(checkpoint=str(checkpoint), arch=str(config), device="cpu").score(
        [__import__("PIL.Image").Image.open(run_dir / p).convert("RGB") for p in frame["image"]], list(frame["prompt"]))
    np.testing.assert_allclose(frame["hpsv2"].to_numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_cli_errors_exit_2_with_one_line(run_dir, capsys):
    assert score_cli.main([str(run_dir), "evaluator=[no_such_scorer]"]) == 2
    assert score_cli.main([str(run_dir)]) == 2  # no evaluator=[...] and no .hydra/config.yaml
    assert score_cli.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_every_evaluator_config_composes_and_instantiates():
    names = sorted(p.stem for p in score_cli.CONF_DIR.joinpath("evaluator").glob("*.yaml") if p.stem != "none")
    assert {"hpsv2", "aes", "pickscore", "imagereward", "lpips", "lpips_vgg", "ssim", "clip_s"} <= set(names)
    built = build_evaluators(score_cli.compose_evaluators([f"evaluator=[{','.join(names)}]"]), load=False)
    assert sorted(built) == names
    assert all(isinstance(e, Evaluator) for e in built.values())
    assert build_evaluators(score_cli.compose_evaluators(["evaluator=none"])) == {}
    assert built["hpsv2"].version == "v2.0" and built["lpips_vgg"].net == "vgg"
    v21 = build_evaluators(score_cli.compose_evaluators(["evaluator=[hpsv2]", "evaluator.hpsv2.version=v2.1"]),
                           load=False)
    assert v21["hpsv2"].version == "v2.1"
