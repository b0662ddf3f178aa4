"""OmegaConf resolvers used by the configs in `conf/` (registered when `noise_exp` is imported)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register_resolvers() -> None:
    """`${noise_exp_root:}` is the project folder (holds conf/, datasets/ and the default model cache)."""
    OmegaConf.register_new_resolver("noise_exp_root", lambda: str(PROJECT_ROOT), replace=True)


CONF_DIR = PROJECT_ROOT / "conf"


def compose_config(overrides: Sequence[str] = (), config_name: str | None = "config") -> DictConfig:
    """Compose `conf/` with Hydra overrides outside `run.py` (scripts, benchmark, tests), as `run.py` would."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name=config_name, overrides=list(overrides))
