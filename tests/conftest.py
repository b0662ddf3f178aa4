"""Shared fixtures: composed configs and the tiny models (built once into the model cache, then loaded)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.utils import instantiate

from noise_exp.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Every model in the tests is tiny and latency-bound: one torch thread is several times faster than two on a
    shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose_cfg(overrides: list[str] | None = None):
    """Compose the real `conf/` with overrides, as `run.py` would."""
    return compose_config(overrides or [])


@pytest.fixture(scope="session")
def tiny_sdxl():
    return instantiate(compose_cfg(["model=tiny_sdxl"]).model)


@pytest.fixture(scope="session")
def tiny_sd():
    return instantiate(compose_cfg(["model=tiny_sd"]).model)
