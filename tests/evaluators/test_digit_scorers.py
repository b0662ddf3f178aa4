"""The digit scorers: finite, deterministic, responsive to the prompt, and built from their configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from noise_exp.data.digits import (digit_prompt, digits_to_pixels, images_to_digit_features, load_digit_splits,
                                   parse_digit, pixels_to_pil)
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import build_evaluators
from noise_exp.evaluators.digits import DigitClassifier, DigitRealism
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def unseen_real_digits():
    """Real digits the scorers were not fitted on (the diffusion model's train split), 20 per class."""
    split = load_digit_splits()["train"]
    index = np.concatenate([np.flatnonzero(split.labels == k)[:20] for k in range(10)])
    return pixels_to_pil(digits_to_pixels(split.images[index])), split.labels[index]


def test_splits_are_disjoint_stratified_and_fixed():
    splits = load_digit_splits()
    train, heldout = splits["train"], splits["heldout"]
    assert len(train.labels) + len(heldout.labels) == 1797 and len(heldout.labels) == 719
    train_images = {image.tobytes() for image in train.images}
    assert not train_images & {image.tobytes() for image in heldout.images}  # no image in both
    assert np.bincount(heldout.labels).min() >= 70
    assert np.array_equal(load_digit_splits()["heldout"].labels, heldout.labels)


def test_images_read_back_in_digit_units():
    real = load_digit_splits()["heldout"].images[:5]
    features = images_to_digit_features(pixels_to_pil(digits_to_pixels(real)))
    assert features.shape == (5, 64)
    assert np.abs(features - real.reshape(5, 64)).mean() < 1.5  # bilinear up, box down: close to the original


def test_parse_digit():
    assert [parse_digit(digit_prompt(k)) for k in range(10)] == list(range(10))
    for bad in ("a handwritten digit", "digits 1 and 2", "the number 12"):
        with pytest.raises(NoiseExpError, match="digit"):
            parse_digit(bad)


def test_classifier_prefers_the_requested_digit_on_unseen_real_digits(unseen_real_digits):
    images, labels = unseen_real_digits
    classifier = DigitClassifier()
    right = classifier.score(images, prompts=[digit_prompt(k) for k in labels])
    wrong = classifier.score(images, prompts=[digit_prompt((k + 3) % 10) for k in labels])
    assert right.dtype == torch.float32 and right.shape == (len(images),)
    assert torch.isfinite(right).all() and ((right >= 0) & (right <= 1)).all()
    assert float((right > wrong).float().mean()) > 0.9
    assert float(right.mean()) > 0.8 and float(wrong.mean()) < 0.1
    assert (classifier.probabilities(images).argmax(1) == labels).mean() > 0.9


def test_realism_prefers_real_digits_of_the_requested_class(unseen_real_digits):
    images, labels = unseen_real_digits
    realism = DigitRealism()
    right = realism.score(images, prompts=[digit_prompt(k) for k in labels])
    wrong = realism.score(images, prompts=[digit_prompt((k + 3) % 10) for k in labels])
    any_class = realism.score(images)
    assert torch.isfinite(right).all() and right.shape == (len(images),) and (right <= 0).all()
    assert float((right > wrong).float().mean()) > 0.9
    assert (any_class >= right - 1e-5).all()  # the nearest digits of any class are at most as far
    noise = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)) for i in range(5)]
    assert float(realism.score(noise, prompts=[digit_prompt(1)] * 5).max()) < float(right.min())


def test_scorers_are_deterministic(unseen_real_digits):
    images, labels = unseen_real_digits
    prompts = [digit_prompt(k) for k in labels]
    for scorer in (DigitClassifier, DigitRealism):
        assert torch.equal(scorer().score(images, prompts=prompts), scorer().score(images, prompts=prompts))


def test_scorers_reject_prompts_without_a_digit(unseen_real_digits):
    images, _ = unseen_real_digits
    for scorer in (DigitClassifier(), DigitRealism()):
        with pytest.raises(NoiseExpError):
            scorer.score(images[:1], prompts=["a photo of a cat"])
    with pytest.raises(NoiseExpError, match="prompt"):
        DigitClassifier().score(images[:1])


def test_evaluator_configs_build_the_scorers():
    cfg = compose_cfg(["evaluator=[digit_classifier,digit_realism]"])
    built = build_evaluators(cfg.evaluator)
    assert isinstance(built["digit_classifier"], DigitClassifier) and isinstance(built["digit_realism"], DigitRealism)
