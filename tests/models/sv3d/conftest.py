"""Fixtures of the SV3D tests: the tiny SV3D model and a small synthetic orbit dataset (both built once)."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate

from noise_exp.data.orbit_fixture import make_orbit_fixture
from tests.conftest import compose_cfg

FIXTURE_OBJECTS = 2
FIXTURE_FRAMES = 84
FIXTURE_SIZE = 64



@pytest.fixture(scope="session")
def tiny_sv3d():
    return instantiate(compose_cfg(["model=tiny_sv3d"]).model)


@pytest.fixture(scope="session")
def orbit_dir(tmp_path_factory):
    return make_orbit_fixture(tmp_path_factory.mktemp("orbits"), FIXTURE_OBJECTS, FIXTURE_FRAMES, FIXTURE_SIZE, seed=0)
