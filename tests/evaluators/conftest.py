"""Shared fixtures: tiny scorer checkpoints (built once per session) and a few distinct images."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image



@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-scorers")


@pytest.fixture(scope="session")
def images():
    """Three different images of different sizes, one of them RGBA and one non-square."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray((rng.random((64, 96, 3)) * 255).astype("uint8"))
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 80, dtype="uint8")[None, :, None], (80, 1, 3)))
    checker = np.kron((np.indices((8, 8)).sum(0) % 2) * 255, np.ones((12, 12))).astype("uint8")
    rgba = Image.fromarray(np.stack([checker, checker // 2, 255 - checker, np.full_like(checker, 255)], -1), "RGBA")
    return [noise, gradient, rgba]


@pytest.fixture(scope="session")
def prompts():
    return ["a photo of a cat", "a red car on the street", "an oil painting of a green tree"]
