"""The shapes world's language: captions, their structured targets, and what it means for a scene to satisfy one.

A caption names one or two groups of objects (circle, square, triangle; optionally coloured; a count 1-4) and,
for two single objects, optionally where the first is relative to the second:

    caption  := group [ "and" group | relation group ]
    group    := ("a" | "one" | "two" | "three" | "four") [colour] shape(s)
    relation := "left of" | "right of" | "above" | "below"

`parse_caption` turns a caption into a `Target`; `Target.caption` writes the canonical caption back. The tag
follows GenEval (Ghosh et al. 2023): what a caption tests is read from its structure (`Target.tag`):

| tag | structure | example |
|---|---|---|
| single_object | one object, no colour | "a circle" |
| colors | one object with a colour | "a green square" |
| counting | one group of 2-4 | "three yellow circles" |
| two_object | two groups, not both coloured | "a square and a triangle" |
| color_attr | two groups, both coloured | "a red square and a blue circle" |
| position | two single objects and a relation | "a red circle left of a blue triangle" |

Semantics (`check`), two rule sets. `rules="exact"` (the world's own, used to label renders and the reward's training
pairs), stricter than GenEval's because a shapes image holds nothing but what its caption names: every named shape
is present, each shape appears exactly as often as the caption says (unnamed shapes and blobs that are no shape:
never), each coloured group has that many objects of its colour, and a relation holds between every pair of matching
objects by GenEval's rule (`relations`). `rules="geneval"` (`geneval_check`, what the judge applies): GenEval's
include/exclude clauses, at least the named objects, exactly N only for counting, colour and position on the most
confident objects, extra objects allowed. Images are drawn by `noise_exp.data.shapes_render`; the judge
(`noise_exp/evaluators/shapes.py`) detects objects in pixels and applies `check(..., rules="geneval")`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Iterator, Sequence

import numpy as np

from noise_exp.errors import NoiseExpError

SHAPES = ("circle", "square", "triangle")
UNRECOGNISED = "unrecognised"  # the shape of a detected blob that is none of SHAPES
PLURALS = {shape: shape + "s" for shape in SHAPES}
# Well separated in RGB (pairwise distance >= 150) and from the white background.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 195, 25),
}
COLORS = tuple(PALETTE)
BACKGROUND = (255, 255, 255)
NUMBER_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}
_COUNT_OF_WORD = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
RELATIONS = ("left of", "right of", "above", "below")
_DIRECTIONS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}  # (axis, sign), y down
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
MAX_OBJECTS = 4
EXAMPLE = "a red circle left of a blue triangle"
# GenEval's `relative_position`: a centre offset counts only beyond this fraction of the two boxes' sizes.
POSITION_THRESHOLD = 0.1


# --- targets ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectSpec:
    """One group of a caption: `count` objects of `shape`, all of `color` (None: any colour)."""

    shape: str
    color: str | None = None
    count: int = 1

    @property
    def phrase(self) -> str:
        words = [NUMBER_WORDS[self.count]] + ([self.color] if self.color else [])
        return " ".join(words + [self.shape if self.count == 1 else PLURALS[self.shape]])

    def matches(self, obj: "SceneObject") -> bool:
        return obj.shape == self.shape and (self.color is None or obj.color == self.color)


@dataclass(frozen=True)
class Target:
    """What a caption asks for: one or two groups and, for two single objects, `groups[0] relation groups[1]`."""

    groups: tuple[ObjectSpec, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        problem = _target_problem(self.groups, self.relation)
        if problem:
            raise ValueError(problem)

    @property
    def caption(self) -> str:
        joiner = f" {self.relation} " if self.relation else " and "
        return joiner.join(group.phrase for group in self.groups)

    @property
    def num_objects(self) -> int:
        return sum(group.count for group in self.groups)

    @property
    def tag(self) -> str:
        if self.relation:
            return "position"
        if len(self.groups) == 2:
            return "color_attr" if all(group.color for group in self.groups) else "two_object"
        only = self.groups[0]
        if only.count > 1:
            return "counting"
        return "colors" if only.color else "single_object"

    def shape_counts(self) -> dict[str, int]:
        """How many objects of each shape an image of this target holds (0 for shapes it does not name)."""
        counts = dict.fromkeys(SHAPES, 0)
        for group in self.groups:
            counts[group.shape] += group.count
        return counts

    def to_geneval(self) -> list[dict[str, Any]]:
        """GenEval's `include` list: {class, count[, color][, position: [relation, index]]}, reference first."""
        def entry(group: ObjectSpec) -> dict[str, Any]:
            return {"class": group.shape, "count": group.count, **({"color": group.color} if group.color else {})}

        if self.relation:  # GenEval lists the reference object first and points back at it
            return [entry(self.groups[1]), {**entry(self.groups[0]), "position": [self.relation, 0]}]
        return [entry(group) for group in self.groups]

    @classmethod
    def from_geneval(cls, include: Sequence[dict[str, Any]]) -> "Target":
        groups = [ObjectSpec(item["class"], item.get("color"), int(item.get("count", 1))) for item in include]
        positioned = [item for item in include if "position" in item]
        if positioned:
            relation, _ = positioned[0]["position"]
            return cls((groups[1], groups[0]), relation)
        return cls(tuple(groups))


def _target_problem(groups: tuple[ObjectSpec, ...], relation: str | None) -> str | None:
    """Why these groups and relation are not a target of the world (None when they are)."""
    if not 1 <= len(groups) <= 2:
        return f"a caption names one or two groups of objects, not {len(groups)}"
    for group in groups:
        if group.shape not in SHAPES:
            return f"unknown shape {group.shape!r} (shapes: {', '.join(SHAPES)})"
        if group.color is not None and group.color not in PALETTE:
            return f"unknown colour {group.color!r} (colours: {', '.join(COLORS)})"
        if group.count not in NUMBER_WORDS:
            return f"a group holds 1-{MAX_OBJECTS} objects, not {group.count}"
    if sum(group.count for group in groups) > MAX_OBJECTS:
        return f"an image holds at most {MAX_OBJECTS} objects"
    if len(groups) == 2 and (groups[0].shape, groups[0].color) == (groups[1].shape, groups[1].color):
        return "the two groups name the same objects"
    if relation is not None:
        if relation not in RELATIONS:
            return f"unknown relation {relation!r} (relations: {', '.join(RELATIONS)})"
        if len(groups) != 2 or any(group.count != 1 for group in groups):
            return "a relation is between two single objects"
        first, second = groups
        if first.shape == second.shape and (first.color is None or second.color is None):
            return "the two objects of a relation must differ in shape, or both be coloured"
    return None


# --- captions -----------------------------------------------------------------------------------------
def _outside(caption: str, reason: str) -> NoiseExpError:
    return NoiseExpError(f"{caption!r} is not a shapes-world caption: {reason} (e.g. {EXAMPLE!r})")


def _parse_group(words: list[str], start: int, caption: str) -> tuple[ObjectSpec, int]:
    if start >= len(words) or words[start] not in _COUNT_OF_WORD:
        got = repr(words[start]) if start < len(words) else "the end"
        raise _outside(caption, f"expected 'a' or a number two-four, got {got}")
    count = _COUNT_OF_WORD[words[start]]
    position = start + 1
    color = words[position] if position < len(words) and words[position] in PALETTE else None
    position += color is not None
    expected = SHAPES if count == 1 else tuple(PLURALS.values())
    if position >= len(words) or words[position] not in expected:
        got = repr(words[position]) if position < len(words) else "the end"
        raise _outside(caption, f"expected {'a colour or ' if color is None else ''}one of "
                                f"{', '.join(expected)}, got {got}")
    shape = words[position] if count == 1 else words[position][:-1]
    return ObjectSpec(shape, color, count), position + 1


def _parse_link(words: list[str], start: int, caption: str) -> tuple[str | None, int]:
    """'and' (no relation) or a relation phrase after the first group."""
    for phrase in ("and",) + RELATIONS:
        size = len(phrase.split())
        if words[start:start + size] == phrase.split():
            return (None if phrase == "and" else phrase), start + size
    raise _outside(caption, f"expected 'and' or a relation ({', '.join(RELATIONS)}), got {words[start]!r}")


def parse_caption(caption: str) -> Target:
    """'a red circle left of a blue triangle' -> Target; NoiseExpError naming the caption when outside the grammar."""
    words = str(caption).lower().replace(",", " ").strip().rstrip(".").split()
    if not words:
        raise _outside(caption, "it is empty")
    first, position = _parse_group(words, 0, caption)
    groups, relation = [first], None
    if position < len(words):
        relation, position = _parse_link(words, position, caption)
        second, position = _parse_group(words, position, caption)
        groups.append(second)
    if position < len(words):
        raise _outside(caption, f"unexpected {' '.join(words[position:])!r} after a complete caption")
    problem = _target_problem(tuple(groups), relation)
    if problem:
        raise _outside(caption, problem)
    return Target(tuple(groups), relation)


def tag_of(caption: str) -> str:
    return parse_caption(caption).tag


# --- semantics ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneObject:
    """One object of an image: what it is and its bounding box (pixels, x right, y down, x0 < x1, y0 < y1)."""

    shape: str
    color: str
    box: tuple[float, float, float, float]
    confidence: float = 1.0  # a detector's (the judge's shape fit); GenEval checks the most confident first

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def size(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0


def relation_components(offset: np.ndarray, sizes: np.ndarray, threshold: float = POSITION_THRESHOLD) -> np.ndarray:
    """GenEval's relative position, vectorised: centre offsets [..., 2] (a minus b) and summed box sizes [..., 2]
    -> [..., 2] direction components: the offset shrunk by `threshold` times the sizes, over the offset's length."""
    length = np.linalg.norm(offset, axis=-1, keepdims=True)
    revised = np.maximum(np.abs(offset) - threshold * sizes, 0) * np.sign(offset)
    return np.divide(revised, length, out=np.zeros_like(revised, dtype=np.float64), where=length > 0)


def relation_holds(relation: str, components: np.ndarray, cutoff: float = 0.5) -> np.ndarray:
    """Whether `relation` holds for direction components [..., 2] (`relation_components`): its component exceeds
    `cutoff`."""
    axis, sign = _DIRECTIONS[relation]
    return sign * components[..., axis] > cutoff


def relations(a: SceneObject, b: SceneObject, threshold: float = POSITION_THRESHOLD,
              cutoff: float = 0.5) -> set[str]:
    """Every relation in which `a` stands to `b`, by GenEval's rule."""
    components = relation_components(np.subtract(a.center, b.center), np.add(a.size, b.size), threshold)
    return {relation for relation in RELATIONS if relation_holds(relation, components, cutoff)}


@dataclass(frozen=True)
class Judgement:
    """Whether a scene satisfies a target, with GenEval-style sub-checks (None: the caption does not ask)."""

    correct: bool
    present: bool  # every named shape is there
    count: bool  # each shape exactly as often as named, no other objects (unrecognised blobs included)
    color: bool | None  # every coloured group has its colour
    position: bool | None  # the relation holds
    reasons: tuple[str, ...] = field(default=())


def check(objects: Sequence[SceneObject], target: Target, rules: str = "exact") -> Judgement:
    """Does a scene (rendered or detected objects) satisfy `target`? `rules="exact"`: the world's own semantics (the
    module docstring); `rules="geneval"`: GenEval's (`geneval_check`)."""
    if rules == "geneval":
        return geneval_check(objects, target)
    if rules != "exact":
        raise NoiseExpError(f"unknown rules {rules!r}: exact or geneval")
    reasons: list[str] = []
    found = {shape: sum(obj.shape == shape for obj in objects) for shape in SHAPES}
    present = all(found[group.shape] > 0 for group in target.groups)
    if not present:
        reasons.append("missing " + ", ".join(g.shape for g in target.groups if not found[g.shape]))
    wanted = target.shape_counts()
    others = len(objects) - sum(found.values())
    count = found == wanted and not others
    if not count:
        reasons.append("counts " + ", ".join([f"{s} {found[s]}/{wanted[s]}" for s in SHAPES if found[s] != wanted[s]]
                                             + ([f"{others} unrecognised"] if others else [])))
    color = None
    coloured = [group for group in target.groups if group.color]
    if coloured:
        short = [g for g in coloured if sum(g.matches(obj) for obj in objects) < g.count]
        color = not short
        reasons.extend(f"fewer than {g.count} {g.color} {g.shape}" for g in short)
    position = None
    if target.relation:
        first = [obj for obj in objects if target.groups[0].matches(obj)]
        second = [obj for obj in objects if target.groups[1].matches(obj)]
        pairs = [(a, b) for a in first for b in second if a is not b]
        position = bool(pairs) and all(target.relation in relations(a, b) for a, b in pairs)
        if not position:
            reasons.append(f"not {target.relation}")
    correct = present and count and color is not False and position is not False
    return Judgement(correct, present, count, color, position, tuple(reasons))


def _group_candidates(objects: Sequence[SceneObject], target: Target, group: ObjectSpec) -> list[SceneObject]:
    """The objects GenEval's detector would list for a group's class, most confident first. The class is the shape;
    where both groups name the same shape (e.g. "a red circle left of a blue circle", a caption GenEval never has),
    the colour is part of the class, or both groups would be the same object."""
    same_shape = sum(g.shape == group.shape for g in target.groups) > 1
    found = [obj for obj in objects if obj.shape == group.shape and (not same_shape or obj.color == group.color)]
    return sorted(found, key=lambda obj: -obj.confidence)


def geneval_check(objects: Sequence[SceneObject], target: Target) -> Judgement:
    """GenEval's rule (djghosh13/geneval, evaluation/evaluate_images.py) on the world's objects. Each group is an
    `include` clause: at least `count` objects of its shape; its colour is checked on the `count` most confident of
    them; a relation is checked between the most confident objects of the two groups. Only counting captions have an
    `exclude` clause: no more than `count` of the shape. Objects the caption does not name, and unrecognised blobs,
    never fail an image."""
    reasons: list[str] = []
    chosen = [_group_candidates(objects, target, group)[:group.count] for group in target.groups]
    short = [g for g, found in zip(target.groups, chosen) if len(found) < g.count]
    present = all(found for found in chosen)
    if short:
        reasons.append("fewer than " + ", ".join(f"{g.count} {g.shape}" for g in short))
    count = not short
    if target.tag == "counting":
        group = target.groups[0]
        total = sum(obj.shape == group.shape for obj in objects)
        if total > group.count:
            count = False
            reasons.append(f"{total} {PLURALS[group.shape]}, more than {group.count}")
    color = None
    if any(group.color for group in target.groups):
        wrong = [g for g, found in zip(target.groups, chosen)
                 if g.color and len(found) == g.count and sum(obj.color == g.color for obj in found) < g.count]
        color = not wrong and not short
        reasons.extend(f"the {g.shape} is not {g.color}" for g in wrong)
    position = None
    if target.relation:
        position = not short and target.relation in relations(chosen[0][0], chosen[1][0])
        if not position:
            reasons.append(f"not {target.relation}")
    correct = count and color is not False and position is not False
    return Judgement(correct, present, count, color, position, tuple(reasons))


# --- the targets of each tag --------------------------------------------------------------------------
@lru_cache(maxsize=None)
def targets_of_tag(tag: str) -> tuple[Target, ...]:
    """Every canonical target of a tag, in a fixed order (the benchmark and the training data draw from these)."""
    objects = [ObjectSpec(shape, color) for shape in SHAPES for color in COLORS]
    if tag == "single_object":
        return tuple(Target((ObjectSpec(shape),)) for shape in SHAPES)
    if tag == "colors":
        return tuple(Target((obj,)) for obj in objects)
    if tag == "counting":
        return tuple(Target((replace(obj, count=n),)) for n in (2, 3, 4) for obj in objects)
    if tag == "two_object":
        return tuple(Target((ObjectSpec(a), ObjectSpec(b))) for a, b in itertools.permutations(SHAPES, 2))
    if tag == "color_attr":
        return tuple(Target((a, b)) for a, b in itertools.permutations(objects, 2)
                     if a.shape != b.shape and a.color != b.color)
    if tag == "position":
        return tuple(Target((a, b), relation) for relation in RELATIONS
                     for a, b in itertools.permutations(objects, 2))
    raise NoiseExpError(f"unknown shapes tag {tag!r}; tags: {', '.join(TAGS)}")


def sample_target(rng: np.random.Generator, tag: str | None = None) -> Target:
    """A target of `tag` (uniform over the tag's targets), or of a uniformly drawn tag."""
    tag = TAGS[int(rng.integers(len(TAGS)))] if tag is None else tag
    choices = targets_of_tag(tag)
    return choices[int(rng.integers(len(choices)))]


def relax(target: Target, rng: np.random.Generator, drop_color: float = 0.25,
          converse: float = 0.5) -> Target:
    """Another caption for the same scene: colours dropped with probability `drop_color` (where the result is still
    a target), a relation restated from the other side ('A left of B' -> 'B right of A') with probability `converse`."""
    groups = tuple(replace(g, color=None) if g.color and rng.random() < drop_color else g for g in target.groups)
    if _target_problem(groups, target.relation):
        groups = target.groups
    relation = target.relation
    if relation and rng.random() < converse:
        groups, relation = groups[::-1], CONVERSE[relation]
    return Target(groups, relation)


def _edits(target: Target) -> Iterator[tuple[tuple[ObjectSpec, ...], str | None]]:
    groups, relation = list(target.groups), target.relation
    for index, group in enumerate(groups):
        def swapped(new: ObjectSpec) -> tuple[ObjectSpec, ...]:
            return tuple(new if i == index else g for i, g in enumerate(groups))

        for color in (None, *COLORS):
            yield swapped(replace(group, color=color)), relation
        for shape in SHAPES:
            yield swapped(replace(group, shape=shape)), relation
        for count in (group.count - 1, group.count + 1):
            yield swapped(replace(group, count=count)), relation
        if len(groups) == 2:
            yield (group,), None
    if len(groups) == 2:
        first, second = groups
        yield (replace(first, color=second.color), replace(second, color=first.color)), relation
        for other in (None, *RELATIONS):
            yield tuple(groups), other


@lru_cache(maxsize=None)
def neighbours(target: Target) -> tuple[Target, ...]:
    """Every target one edit away (a colour, shape or count changed, colours swapped between the groups, the
    relation changed or dropped, a group dropped): near misses for a learned reward to tell apart. Some may still
    hold for a given scene (e.g. a colour dropped); `check` tells."""
    found = dict.fromkeys(Target(groups, relation) for groups, relation in _edits(target)
                          if not _target_problem(groups, relation))
    found.pop(target, None)
    return tuple(found)


def benchmark(per_tag: int, seed: int) -> list[Target]:
    """`per_tag` targets of each tag, interleaved (row i has tag i mod 6): each tag's targets shuffled with `seed`
    and taken in turn, so a tag with fewer distinct targets than `per_tag` repeats each of them equally often."""
    rng = np.random.default_rng(seed)
    columns = []
    for tag in TAGS:
        pool = list(targets_of_tag(tag))
        order = [pool[i] for i in rng.permutation(len(pool))]
        columns.append([order[i % len(order)] for i in range(per_tag)])
    return [column[i] for i in range(per_tag) for column in columns]


__all__ = ["BACKGROUND", "COLORS", "CONVERSE", "EXAMPLE", "Judgement", "MAX_OBJECTS", "ObjectSpec", "PALETTE",
           "RELATIONS", "SHAPES", "SceneObject", "TAGS", "Target", "UNRECOGNISED", "benchmark", "check", "geneval_check",
           "parse_caption",
           "neighbours", "relation_components", "relation_holds", "relations", "relax", "sample_target", "tag_of", "targets_of_tag"]
