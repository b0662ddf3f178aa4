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
if os.environ.get("PYTEST_XDIST_WORKER"):
    # each pytest-xdist worker has one core: the commands tests start (run.py, SLURM jobs) use one thread too
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    """Refuse a distributed run that would ignore the `xdist_group` marks (tests/slurm share one cluster per machine,
    the fault matrix must run once)."""
    dist, workers = getattr(config.option, "dist", "no"), getattr(config.option, "tx", None)
    if workers and dist != "loadgroup" and not hasattr(config, "workerinput"):
        raise pytest.UsageError(f"-n needs --dist loadgroup here, not --dist {dist}: some tests share one resource "
                                f"(xdist_group marks)")


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
