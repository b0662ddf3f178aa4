"""Rendered object orbits (OmniObject3D as in the paper's appendix C.2.1) as a dataset of image-to-3D items.

Layout of `path`: one folder per object, each holding the `frames_per_orbit` renders of a full turn on a
white background, named so that sorting gives the orbit order (e.g. `000.png` .. `083.png`; Blender's
`render_orbits_blender.py` writes exactly this). `num_objects` objects are drawn with `seed` (all of them
when fewer exist). Per object the input view is frame `input_frame` and the ground truth of generated view
i (azimuth (i + 1) * 360 / num_views past the input) is frame input_frame + (i + 1) * stride, stride =
frames_per_orbit / num_views: every 4th frame for 84 renders and SV3D's 21 views. The last view is the
input view itself, as in SV3D.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noise_exp.data.prompts import Prompt
from noise_exp.errors import NoiseExpError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def orbit_frames(folder: Path) -> list[Path]:
    """The images of one orbit folder in orbit order (sorted by name)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def view_indices(frames_per_orbit: int, num_views: int, input_frame: int = 0, direction: int = 1) -> list[int]:
    """Frame index of the ground truth of each generated view: input + direction (i + 1) stride, modulo the orbit."""
    if num_views < 1 or frames_per_orbit % num_views:
        raise NoiseExpError(f"dataset.frames_per_orbit ({frames_per_orbit}) must be a multiple of dataset.num_views "
                            f"({num_views}) so that every view has a rendered ground truth")
    stride = frames_per_orbit // num_views
    if direction not in (1, -1):
        raise NoiseExpError(f"dataset.direction must be 1 or -1 (the renders' turn against SV3D's), got {direction}")
    return [(input_frame + direction * (i + 1) * stride) % frames_per_orbit for i in range(num_views)]


@dataclass
class OrbitSet:
    """`load()` returns one `Prompt` per picked object: text = object name, meta = input and ground-truth paths.

    `report` is the post-run report node (built by the runner from the config, see `noise_exp.sv3d_report`);
    the dataset itself does not use it.
    """

    name: str = "omniobject3d"
    path: str | None = None
    num_objects: int = 30
    seed: int = 0
    frames_per_orbit: int = 84
    num_views: int = 21
    input_frame: int = 0
    direction: int = 1
    offset: int = 0
    limit: int | None = None
    num_shards: int = 1
    shard_index: int = 0
    report: Any = None

    def load(self) -> list[Prompt]:
        root = self._root()
        objects = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not objects:
            raise NoiseExpError(f"{root} holds no object folders; expected <object>/<frame>.png orbits (docs/sv3d.md)")
        picked = sorted(random.Random(self.seed).sample(range(len(objects)), min(self.num_objects, len(objects))))
        gt_indices = view_indices(self.frames_per_orbit, self.num_views, self.input_frame, self.direction)
        prompts = [self._item(object_id, objects[object_id], gt_indices) for object_id in picked]
        end = None if self.limit is None else self.offset + self.limit
        prompts = prompts[self.offset:end][self.shard_index::max(1, self.num_shards)]
        if not prompts:
            raise NoiseExpError(f"no objects to run from {root} (offset={self.offset}, limit={self.limit}, "
                                f"shard {self.shard_index}/{self.num_shards})")
        return prompts

    def _root(self) -> Path:
        if not self.path or str(self.path) == "???":
            raise NoiseExpError("dataset.path is not set: point it at a folder of rendered orbits "
                                "(scripts/make_orbit_fixture.py makes a small synthetic one; docs/sv3d.md)")
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise NoiseExpError(f"orbit folder not found: {root} (set dataset.path)")
        return root

    def _item(self, object_id: int, folder: Path, gt_indices: list[int]) -> Prompt:
        frames = orbit_frames(folder)
        if len(frames) != self.frames_per_orbit:
            raise NoiseExpError(f"{folder} has {len(frames)} frames, expected dataset.frames_per_orbit="
                                f"{self.frames_per_orbit}")
        meta = {"image": str(frames[self.input_frame]), "views": [str(frames[i]) for i in gt_indices],
                "view_frames": gt_indices, "object": folder.name}
        return Prompt(object_id, folder.name, self.name, meta)
