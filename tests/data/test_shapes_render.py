"""Drawing the shapes world: deterministic, every scene satisfies its caption, objects apart and inside."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from noise_exp.data.shapes import TAGS, check, sample_target
from noise_exp.data.shapes_render import (BORDER_FRACTION, GAP_FRACTION, MODEL_LIKE, perturb, render,
                                          sample_renderings, training_pairs)


@pytest.mark.parametrize("size", [32, 64])
def test_scenes_satisfy_their_targets_apart_and_inside(size):
    rng = np.random.default_rng(size)
    for index in range(300):
        target = sample_target(rng, TAGS[index % len(TAGS)])
        rendering = render(target, rng, size)
        assert rendering.image.size == (size, size) and rendering.image.mode == "RGB"
        assert check(rendering.objects, target).correct
        boxes = np.array([obj.box for obj in rendering.objects])
        assert boxes.min() >= BORDER_FRACTION * size - 1e-9 and boxes.max() <= size * (1 - BORDER_FRACTION) + 1e-9
        for a, b in itertools.combinations(boxes, 2):
            gap = max(a[0] - b[2], b[0] - a[2], a[1] - b[3], b[1] - a[3])
            assert gap >= GAP_FRACTION * size - 1e-9


def test_renders_are_deterministic_from_the_seed():
    first = sample_renderings(12, seed=5, perturbation=MODEL_LIKE)
    again = sample_renderings(12, seed=5, perturbation=MODEL_LIKE)
    other = sample_renderings(12, seed=6, perturbation=MODEL_LIKE)
    assert [r.image.tobytes() for r in first] == [r.image.tobytes() for r in again]
    assert [r.image.tobytes() for r in first] != [r.image.tobytes() for r in other]
    assert [r.target.tag for r in first] == list(TAGS) * 2


def test_training_pairs_are_unlimited_deterministic_and_true():
    pairs = list(itertools.islice(training_pairs(seed=3, size=32), 40))
    again = list(itertools.islice(training_pairs(seed=3, size=32), 40))
    assert [(p.caption, p.image.tobytes()) for p in pairs] == [(p.caption, p.image.tobytes()) for p in again]
    assert len({p.caption for p in pairs}) > 20 and {p.target.tag for p in pairs} == set(TAGS)


def test_perturbation_changes_pixels_but_keeps_the_scene_true():
    rng = np.random.default_rng(0)
    for clean in sample_renderings(30, seed=2):
        noisy = perturb(clean, rng)
        assert noisy.image.size == clean.image.size and noisy.image.tobytes() != clean.image.tobytes()
        assert check(noisy.objects, clean.target).correct
