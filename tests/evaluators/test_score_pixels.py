"""`score_pixels`, the differentiable tensor path: equal to `score` (tiny checkpoints, real loading code), a gradient
that reaches every image and raises the score when followed, and one line for the scorers that have no such path.

`pytest tests/evaluators/test_score_pixels.py -s` prints the max relative difference per evaluator
(docs/evaluators.md)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from noise_exp.data.shapes_render import MODEL_LIKE, sample_renderings
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import differentiable_evaluators
from noise_exp.evaluators.digits import DigitClassifier, DigitRealism
from noise_exp.evaluators.lpips import LPIPS
from noise_exp.evaluators.preprocess import pil_bicubic_resize
from noise_exp.evaluators.shapes import ShapesGenEval
from noise_exp.evaluators.shapes_reward import ShapesReward
from noise_exp.evaluators.ssim import SSIM
from tests.support.scorers import assert_valid_scores, tiny_differentiable_scorers

# (width, height): upscaled square, upscaled and cropped, an odd crop excess (torchvision and transformers place the
# crop one pixel apart), downscaled as a generated image is.
SIZES = [(32, 32), (64, 48), (45, 32), (300, 260)]
PROMPTS = ["a photo of a cat", "a red car on the street"]
DIFFERENTIABLE = ["hpsv2", "aes", "clip_s", "pickscore", "imagereward", "shapes_reward"]


def smooth_and_noisy(width: int, height: int, seed: int = 0) -> list[Image.Image]:
    """Two 8-bit images: smooth colour waves (PIL's rounding ties are common there) and uniform noise."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    waves = np.stack([np.sin(6 * x + c) * np.cos(5 * y - c) for c in range(3)], -1) * 0.5 + 0.5
    noise = np.random.default_rng(seed).random((height, width, 3))
    return [Image.fromarray((array * 255).astype("uint8")) for array in (waves, noise)]


@pytest.fixture(scope="module")
def scorers(tiny_folder):
    built = tiny_differentiable_scorers(tiny_folder)
    built["shapes_reward"] = ShapesReward()  # the committed weights
    return built


@pytest.fixture(scope="module")
def shapes_cases():
    """Renders of the shapes world at each size (resized by PIL) with their captions."""
    renderings = sample_renderings(2, seed=5, perturbation=MODEL_LIKE)
    prompts = [r.target.caption for r in renderings]
    return {size: ([r.image.convert("RGB").resize(size, Image.BICUBIC) for r in renderings], prompts)
            for size in SIZES}


def cases(name: str, shapes_cases) -> dict[tuple[int, int], tuple[list[Image.Image], list[str]]]:
    if name == "shapes_reward":
        return shapes_cases
    return {size: (smooth_and_noisy(*size), PROMPTS) for size in SIZES}


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_score_pixels_equals_score(name, scorers, shapes_cases):
    evaluator = scorers[name]
    assert evaluator.differentiable
    worst = 0.0
    for size, (images, prompts) in cases(name, shapes_cases).items():
        expected = evaluator.score(images, prompts)
        with torch.no_grad():
            got = evaluator.score_pixels(torch.stack([to_tensor(image) for image in images]), prompts)
        assert got.shape == expected.shape and got.dtype == torch.float32
        relative = ((got - expected).abs() / expected.abs()).max().item()
        assert relative < 1e-3, f"{name} at {size}: {got.tolist()} vs score {expected.tolist()}"
        worst = max(worst, relative)
    print(f"\n{name}: max relative difference of score_pixels to score {worst:.1e}")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradient_reaches_every_image_and_raises_the_score(name, scorers, shapes_cases):
    evaluator = scorers[name]
    images, prompts = cases(name, shapes_cases)[(64, 48)]
    pixels = torch.stack([to_tensor(image) for image in images]).double().requires_grad_(True)
    scores = evaluator.score_pixels(pixels, prompts)
    assert scores.shape == (2,) and scores.dtype == torch.float32 and scores.device == pixels.device
    scores.sum().backward()
    assert pixels.grad.dtype == torch.float64 and torch.isfinite(pixels.grad).all()
    assert (pixels.grad.flatten(1).abs().sum(1) > 0).all(), "every image gets a gradient"
    with torch.no_grad():  # a signed step of 3 grey levels along the gradient: each score goes up
        stepped = evaluator.score_pixels((pixels + 3 / 255 * pixels.grad.sign()).clamp(0, 1), prompts)
    assert (stepped > scores.detach()).all(), f"{name}: {scores.tolist()} -> {stepped.tolist()}"


def test_pil_bicubic_resize_is_pillows(one_thread):
    """Bit-exact, including shapes where Pillow 13 runs the height pass first (300x260 -> 298x224)."""
    for width, height in SIZES:
        for image in smooth_and_noisy(width, height, seed=1):
            for target in ((224, 224), (298, 224), (224, 193)):
                expected = torch.from_numpy(np.array(image.resize(target, Image.BICUBIC))).permute(2, 0, 1)
                got = pil_bicubic_resize(to_tensor(image)[None], target[1], target[0])[0] * 255
                assert (got - expected).abs().max() < 1e-3, (width, height, target)


NOT_DIFFERENTIABLE = [(LPIPS, dict(random_backbone=True)), (SSIM, {}), (ShapesGenEval, {}), (DigitClassifier, {}),
                      (DigitRealism, {})]


@pytest.mark.parametrize("cls, kwargs", NOT_DIFFERENTIABLE, ids=[cls.__name__ for cls, _ in NOT_DIFFERENTIABLE])
def test_scorers_without_a_tensor_path_say_so_in_one_line(cls, kwargs):
    evaluator = cls(device="cpu", **kwargs)
    assert not evaluator.differentiable
    with pytest.raises(NoiseExpError) as error:
        evaluator.score_pixels(torch.rand(1, 3, 32, 32), ["a photo of a cat"])
    assert str(error.value) == (f"{evaluator.name} has no differentiable path (score_pixels); differentiable "
                                f"evaluators: aes, clip_s, hpsv2, imagereward, pickscore, shapes_reward")
    assert differentiable_evaluators() == sorted(DIFFERENTIABLE)


def test_bad_pixels_and_missing_prompts_are_one_line(scorers):
    with pytest.raises(NoiseExpError, match=r"hpsv2.score_pixels expects pixels \[B, 3, H, W\] float in \[0, 1\], "
                                            r"got \(2, 1, 32, 32\)"):
        scorers["hpsv2"].score_pixels(torch.rand(2, 1, 32, 32), PROMPTS)
    with pytest.raises(NoiseExpError, match=r"pickscore needs one prompt per image \(got 1 prompts for 2 images\)"):
        scorers["pickscore"].score_pixels(torch.rand(2, 3, 32, 32), PROMPTS[:1])
    with pytest.raises(NoiseExpError, match="image-reference mode of clip_s has no differentiable path"):
        scorers["clip_s"].score_pixels(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize("name", ["hpsv2", "pickscore", "imagereward"])  # open_clip, transformers, our BLIP
def test_half_precision_scorers_return_float32_and_a_finite_gradient(name, tiny_folder, shapes_cases):
    """What a GPU run in float16 does, in bfloat16 on CPU (where `dtype` itself falls back to float32)."""
    evaluator = tiny_differentiable_scorers(tiny_folder)[name]
    evaluator.dtype = torch.bfloat16
    images, prompts = cases(name, shapes_cases)[(64, 48)]
    pixels = torch.stack([to_tensor(image) for image in images]).requires_grad_(True)
    scores = evaluator.score_pixels(pixels, prompts)
    scores.sum().backward()
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all() and torch.isfinite(pixels.grad).all()
    assert_valid_scores(evaluator.score(images, prompts), 2)


def test_a_processor_the_tensor_path_does_not_reproduce_is_one_line(scorers):
    from noise_exp.evaluators.pickscore import processor_geometry

    _, processor = scorers["pickscore"].load()
    with pytest.raises(NoiseExpError, match=r"this one has do_center_crop=False, resample=2$"):
        processor_geometry(processor.image_processor.__class__(**{**processor.image_processor.to_dict(),
                                                                  "do_center_crop": False, "resample": 2}))
