"""Model adapters: each wraps a diffusion pipeline as the map eps -> x0 -> eps'.

The adapters are imported on first use (`noise_exp.models.StableDiffusionXLModel`, as the configs' `_target_`s
name them), so a command that stops on a config or input error never pays for importing diffusers.
"""
from importlib import import_module
from typing import Any

from noise_exp.models.base import Conditioning, NoiseModel

_LAZY = {"StableDiffusionModel": "noise_exp.models.stable_diffusion",
         "StableDiffusionXLModel": "noise_exp.models.stable_diffusion",
         "StableDiffusion3Model": "noise_exp.models.flow_matching", "FluxModel": "noise_exp.models.flow_matching"}

__all__ = ["Conditioning", "NoiseModel", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
