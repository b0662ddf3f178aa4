"""The trained small digits model through `model=small_digits`, and run.py's path with its scorers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

from noise_exp.data.digits import digit_prompt
from noise_exp.evaluators.digits import DigitClassifier
from noise_exp.runner import run_experiment
from tests.conftest import compose_cfg
from tests.test_ddim import drive_inverse_scheduler

SCORERS = "evaluator=[digit_classifier,digit_realism]"


def test_is_a_real_stable_diffusion_pipeline(small_digits):
    pipe = small_digits.pipe
    assert isinstance(pipe, StableDiffusionPipeline) and isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(small_digits.scheduler, DDIMScheduler)
    assert small_digits.latent_shape == (4, 4, 4) and (small_digits.height, small_digits.width) == (16, 16)


def test_generates_the_requested_digit(small_digits, one_thread):
    """3 seeds per digit: the held-out classifier must name the requested digit far above chance (10%)."""
    classifier = DigitClassifier()
    hits = []
    for digit in range(10):
        cond = small_digits.encode_prompt(digit_prompt(digit))
        images = small_digits.decode(small_digits.denoise(small_digits.draw_noise([0, 1, 2]), cond))
        hits += list(classifier.probabilities(images).argmax(1) == digit)
    assert np.mean(hits) >= 0.8, f"accuracy {np.mean(hits):.2f}"


def test_denoise_then_invert_is_a_near_but_imperfect_roundtrip(small_digits, one_thread):
    cond = small_digits.encode_prompt(digit_prompt(4))
    noise = small_digits.draw_noise(range(8))
    inverted = small_digits.invert(small_digits.denoise(noise, cond), cond)
    stability = torch.nn.functional.cosine_similarity(noise.flatten(1), inverted.flatten(1))
    assert ((stability > 0) & (stability < 1)).all() and float(stability.std()) > 0.01  # seeds differ: selectable


@pytest.mark.parametrize("method", ["select", "optimize"])
def test_run_py_path_scores_and_reports(small_digits, one_thread, tmp_path, method):
    extra = ["method.num_seeds=4"] if method == "select" else ["method.steps=2", "method.lr=0.2"]
    cfg = compose_cfg(["model=small_digits", "dataset=digits", "dataset.limit=2", f"method={method}", SCORERS, *extra])
    run_experiment(cfg, tmp_path)
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 4 and set(results["prompt"]) == {digit_prompt(0), digit_prompt(1)}
    assert results[["digit_classifier", "digit_realism", "stability"]].notna().all().all()
    assert (tmp_path / "report" / "report.md").is_file()
    if method == "select":  # eq. 3 of each kept noise, its inversion done by diffusers' DDIMInverseScheduler
        for row in results.itertuples():
            noise = torch.load(tmp_path / row.noise)[None]
            assert torch.equal(noise, small_digits.draw_noise([row.seed]))
            cond = small_digits.encode_prompt(row.prompt)
            inverted = drive_inverse_scheduler(small_digits, cond, small_digits.denoise(noise, cond))
            expected = float(torch.nn.functional.cosine_similarity(noise.flatten(1), inverted.flatten(1)))
            assert row.stability == pytest.approx(expected, abs=1e-4), row.variant
        stability = results.pivot(index="prompt_id", columns="variant", values="stability")
        assert (stability["stable"] > stability["unstable"]).all()
