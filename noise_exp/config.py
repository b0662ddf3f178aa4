"""OmegaConf resolvers used by the configs in `conf/` (registered when `noise_exp` is imported)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register_resolvers() -> None:
    """`${noise_exp_root:}` is the project folder (holds conf/, datasets/ and the default model cache)."""
    OmegaConf.register_new_resolver("noise_exp_root", lambda: str(PROJECT_ROOT), replace=True)
