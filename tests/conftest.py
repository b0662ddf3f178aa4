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


def load_script(name: str):
    """scripts/<name>.py as a module, registered in sys.modules (its dataclasses look their module up)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pytest_configure(config):
    """Refuse a distributed run that would drop the `xdist_group` marks (tests/slurm share one cluster per machine,
    the fault matrix must run once)."""
    if not getattr(config.option, "tx", None) or hasattr(config, "workerinput"):
        return  # not distributed, or an xdist worker
    if config.option.dist != "loadgroup":
        raise pytest.UsageError(f"-n needs --dist loadgroup here, not --dist {config.option.dist}: some tests share "
                                f"one resource (xdist_group marks)")
    import xdist
    from packaging.version import Version

    # pytest-xdist 3.8.0 passes a test's group as an `@group` suffix of its node id, which pytest 9.2 no longer lets
    # it set: the groups would be dropped without a word (pytest-xdist issue 1386)
    if Version(pytest.__version__) >= Version("9.2") and xdist.__version__ == "3.8.0":
        raise pytest.UsageError(f"pytest {pytest.__version__} drops pytest-xdist 3.8.0's xdist_group marks "
                                f"(pytest-xdist issue 1386): pip install 'pytest<9.2' (the dev extras pin it)")


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
