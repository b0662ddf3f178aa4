"""The exact judge: right on clean renders of every tag, wrong images rejected for the right reason, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evaluators import build_evaluators
from evaluators.shapes import ShapesGenEval, detect_objects, judge, summarize, tag_accuracy
from noise_exp.data.shapes import TAGS, ObjectSpec, Target, check, neighbours, parse_caption, sample_target
from noise_exp.data.shapes_render import MODEL_LIKE, render, sample_renderings
from noise_exp.errors import NoiseExpError
from tests.conftest import compose_cfg


@pytest.mark.parametrize("size", [32, 64])
def test_exact_on_clean_renders_of_every_tag(size):
    renderings = sample_renderings(len(TAGS) * 15, seed=100 + size, size=size)
    judgements = [judge(r.image, r.target) for r in renderings]
    failures = [(r.target.caption, j.reasons) for r, j in zip(renderings, judgements) if not j.correct]
    assert not failures
    summary = summarize([r.target.tag for r in renderings], judgements)
    assert all(summary[tag].correct == 1.0 and summary[tag].n == 15 for tag in TAGS)
    assert summary["position"].position == 1.0 and summary["single_object"].color is None


def test_detects_what_was_drawn():
    for rendering in sample_renderings(24, seed=7):
        found = sorted((obj.shape, obj.color) for obj in detect_objects(rendering.image))
        assert found == sorted((obj.shape, obj.color) for obj in rendering.objects)


def test_nearly_exact_on_model_like_renders():
    renderings = sample_renderings(60, seed=11, perturbation=MODEL_LIKE)
    assert np.mean([judge(r.image, r.target).correct for r in renderings]) >= 0.95  # measured: 1.000 on 2,000


@pytest.mark.parametrize("caption, other, failed", [
    ("three yellow circles", "two yellow circles", "count"),
    ("three yellow circles", "four yellow circles", "count"),
    ("a circle", "two circles", "count"),
    ("a red square", "a blue square", "color"),
    ("a red square and a blue circle", "a blue square and a red circle", "color"),
    ("a red circle left of a blue triangle", "a red circle right of a blue triangle", "position"),
    ("a red circle above a blue triangle", "a red circle below a blue triangle", "position"),
    ("a green square", "a green circle", "present"),
    ("a square and a triangle", "a square and a circle", "present"),
    ("a triangle", "a square", "present"),
])
def test_rejects_images_of_another_target_for_the_right_reason(caption, other, failed):
    rng = np.random.default_rng(0)
    for _ in range(4):
        image = render(parse_caption(other), rng).image
        verdict = judge(image, parse_caption(caption))
        assert not verdict.correct and getattr(verdict, failed) is False, (caption, other, verdict)


def test_rejects_renders_of_near_miss_targets():
    """Render a target one edit away that the caption does not describe: the judge says wrong, always."""
    rng = np.random.default_rng(1)
    checked = 0
    for index in range(90):
        target = sample_target(rng, TAGS[index % len(TAGS)])
        near = neighbours(target)
        rendering = render(near[int(rng.integers(len(near)))], rng)
        if not check(rendering.objects, target).correct:  # e.g. "a circle" drawn red still says "a red circle"
            checked += 1
            assert not judge(rendering.image, target).correct, (target.caption, rendering.target.caption)
    assert checked > 60


def test_unrecognised_blob_and_empty_image_are_wrong():
    blank = Image.new("RGB", (32, 32), "white")
    verdict = judge(blank, parse_caption("a circle"))
    assert not verdict.correct and not verdict.present
    smear = blank.copy()
    smear.paste((220, 40, 40), (2, 14, 30, 17))  # a thin red bar: no shape fits it
    assert [obj.shape for obj in detect_objects(smear)] == ["unrecognised"]
    assert not judge(smear, parse_caption("a red square")).count


def test_non_rgb_images_are_converted_and_non_images_are_one_line():
    rendering = render(parse_caption("a blue circle and a yellow square"), np.random.default_rng(0))
    judge_ = ShapesGenEval()
    for image in (rendering.image.convert("RGBA"), rendering.image.convert("P"), rendering.image.convert("CMYK")):
        assert judge_.score([image], [rendering.target.caption]).tolist() == [1.0]
    assert judge_.score([rendering.image.convert("L")], [rendering.target.caption]).tolist() == [0.0]
    with pytest.raises(NoiseExpError, match="PIL images, got ndarray"):
        judge_.score([np.asarray(rendering.image)], [rendering.target.caption])


def test_prompts_outside_the_grammar_or_missing_are_one_line():
    image = render(Target((ObjectSpec("circle"),)), np.random.default_rng(0)).image
    with pytest.raises(NoiseExpError, match="'a photo of a dog' is not a shapes-world caption"):
        ShapesGenEval().score([image], ["a photo of a dog"])
    with pytest.raises(NoiseExpError, match="one prompt per image"):
        ShapesGenEval().score([image])


def test_tag_accuracy_is_per_tag_and_overall_is_their_mean():
    prompts = ["a circle", "a square", "a red circle", "two red circles"]
    accuracy = tag_accuracy(prompts, [1.0, 0.0, 1.0, 1.0])
    assert accuracy == {"single_object": 0.5, "counting": 1.0, "colors": 1.0, "overall": pytest.approx(2.5 / 3)}


def test_evaluator_config_builds_the_judge():
    built = build_evaluators(compose_cfg(["evaluator=[shapes_geneval]"]).evaluator)
    assert isinstance(built["shapes_geneval"], ShapesGenEval)
