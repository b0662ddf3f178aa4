"""The trained small digits model, loaded through `model=small_digits` as run.py does (never trained here)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.conftest import compose_cfg


@pytest.fixture(scope="session")
def small_digits():
    cfg = compose_cfg(["model=small_digits"])
    if not (Path(cfg.model.pretrained) / "model_index.json").exists():
        pytest.skip(f"the small digits model is not trained at {cfg.model.pretrained}: run `make train-small` "
                    f"(training takes minutes; tests never train the full model)")
    return instantiate(cfg.model)

