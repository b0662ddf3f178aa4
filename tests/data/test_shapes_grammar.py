"""The shapes world's captions: round trips for every tag, the tags, clear errors, the committed benchmark."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hydra.utils import instantiate

from noise_exp.data.shapes import (TAGS, ObjectSpec, Target, benchmark, neighbours, parse_caption, relax,
                                   sample_target, targets_of_tag)
from noise_exp.errors import NoiseExpError
from tests.conftest import ROOT, compose_cfg

EXAMPLES = {  # the examples, and GenEval's structure where those collide
    "single_object": "a circle",
    "two_object": "a square and a triangle",
    "counting": "three yellow circles",
    "colors": "a green square",
    "position": "a red circle left of a blue triangle",
    "color_attr": "a red square and a blue circle",
}


@pytest.mark.parametrize("tag", TAGS)
def test_every_caption_of_every_tag_round_trips(tag):
    targets = targets_of_tag(tag)
    assert targets and len(set(targets)) == len(targets)
    for target in targets:
        assert target.tag == tag
        assert parse_caption(target.caption) == target  # target -> caption -> target
        assert parse_caption(target.caption).caption == target.caption  # caption -> target -> caption
        assert Target.from_geneval(json.loads(json.dumps(target.to_geneval()))) == target


@pytest.mark.parametrize("tag, caption", EXAMPLES.items())
def test_examples_parse_to_their_tag(tag, caption):
    target = parse_caption(caption)
    assert target.tag == tag and target.caption == caption


def test_parsing_normalises_case_spacing_and_a_final_period():
    assert parse_caption("  A Red  Circle LEFT of an blue triangle. ").caption == "a red circle left of a blue triangle"
    assert parse_caption("one square").caption == "a square"
    expected = Target((ObjectSpec("circle", "yellow", 3),))
    assert parse_caption("three yellow circles") == expected and expected.num_objects == 3


@pytest.mark.parametrize("caption, reason", [
    ("a photo of a cat", "photo"),
    ("", "empty"),
    ("five circles", "five"),
    ("two circle", "circles"),
    ("a purple circle", "purple"),
    ("a circle and", "the end"),
    ("a circle next to a square", "relation"),
    ("a circle above two squares", "two single objects"),
    ("three circles and two squares", "at most 4"),
    ("a circle and a circle", "same objects"),
    ("a circle left of a red circle", "differ in shape"),
    ("a red circle a blue square", "'a'"),
])
def test_captions_outside_the_grammar_are_one_line_naming_them(caption, reason):
    with pytest.raises(NoiseExpError) as error:
        parse_caption(caption)
    message = str(error.value)
    assert "\n" not in message and repr(caption) in message and reason in message


def test_relaxed_and_neighbouring_captions_stay_in_the_world():
    rng = np.random.default_rng(0)
    for _ in range(200):
        target = sample_target(rng)
        again = relax(target, rng, drop_color=0.5)
        assert again.num_objects == target.num_objects and parse_caption(again.caption) == again
        near = neighbours(target)
        assert near and target not in near and all(parse_caption(t.caption) == t for t in near)
    swapped = parse_caption("a red circle left of a blue triangle")
    assert Target(swapped.groups[::-1], "right of") in {relax(swapped, np.random.default_rng(s), 0.0, 1.0)
                                                        for s in range(3)}


@pytest.mark.parametrize("name, seed", [("shapes_bench", 0), ("shapes_val", 1)])
def test_benchmark_is_balanced_interleaved_and_the_committed_file_is_the_generators(name, seed):
    targets = benchmark(50, seed=seed)
    assert len(targets) == 300 and [t.tag for t in targets[:6]] == list(TAGS)
    assert all(sum(t.tag == tag for t in targets) == 50 for tag in TAGS)
    assert benchmark(50, seed=seed) == targets and benchmark(50, seed=seed + 1) != targets
    rows = [json.loads(line) for line in (ROOT / "datasets" / f"{name}.jsonl").read_text().splitlines()]
    assert [(r["tag"], r["prompt"]) for r in rows] == [(t.tag, t.caption) for t in targets]
    assert all(Target.from_geneval(r["include"]) == parse_caption(r["prompt"]) for r in rows)


def test_dataset_config_loads_the_benchmark_with_tags_and_targets():
    prompts = instantiate(compose_cfg(["dataset=shapes_bench"]).dataset).load()
    assert len(prompts) == 300 and prompts[4].meta["tag"] == "position"
    assert Target.from_geneval(prompts[4].meta["include"]) == parse_caption(prompts[4].text)
