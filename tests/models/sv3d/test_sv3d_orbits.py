"""The orbit dataset: objects drawn by seed, input view and every (84 / views)-th frame as ground truth."""
from __future__ import annotations

import pytest

from noise_exp.data.orbits import OrbitSet, view_indices
from noise_exp.errors import NoiseExpError
from tests.conftest import compose_cfg


def test_sv3d_views_are_every_4th_frame_ending_at_the_input():
    indices = view_indices(84, 21, input_frame=0)
    assert indices[:3] == [4, 8, 12] and indices[-1] == 0 and len(indices) == 21
    assert view_indices(84, 21, input_frame=10, direction=-1)[:2] == [6, 2]


def test_objects_are_drawn_by_seed(orbit_dir):
    prompts = OrbitSet(path=str(orbit_dir), num_objects=1, seed=3, num_views=21).load()
    again = OrbitSet(path=str(orbit_dir), num_objects=1, seed=3, num_views=21).load()
    assert [p.id for p in prompts] == [p.id for p in again] and len(prompts) == 1
    every = OrbitSet(path=str(orbit_dir), num_objects=30, num_views=21).load()
    assert [p.text for p in every] == ["object_00", "object_01"]  # fewer than 30 objects: all of them
    meta = every[0].meta
    assert meta["image"].endswith("object_00/000.png") and meta["views"][0].endswith("object_00/004.png")
    assert len(meta["views"]) == 21 and meta["view_frames"][-1] == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"path": None}, "dataset.path is not set"),
    ({"path": "/nonexistent/orbits"}, "orbit folder not found"),
    ({"frames_per_orbit": 80, "num_views": 20}, "has 84 frames, expected dataset.frames_per_orbit=80"),
    ({"num_views": 5}, "must be a multiple of dataset.num_views"),
])
def test_bad_dataset_settings_are_one_line_errors(orbit_dir, kwargs, message):
    settings = {"path": str(orbit_dir), "num_views": 21, **kwargs}
    with pytest.raises(NoiseExpError, match=message):
        OrbitSet(**settings).load()


def test_table3_experiment_composes_the_papers_settings():
    cfg = compose_cfg(["experiment=table3"])
    assert cfg.model.name == "sv3d_u" and cfg.model.num_frames == 21 and cfg.model.height == cfg.model.width == 576
    assert cfg.model.num_steps == 50 and cfg.model.guidance_scale == 2.5 and cfg.model.sigma_max == 700.0
    assert (cfg.method.steps, cfg.method.lr, cfg.method.momentum) == (20, 1500.0, 0.5)
    assert cfg.dataset.name == "omniobject3d" and cfg.dataset.num_objects == 30 and cfg.dataset.num_views == 21
    assert sorted(cfg.evaluator) == ["clip_s", "lpips", "ssim"]
