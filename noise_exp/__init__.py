"""noise-exp: diffusion noise selection and optimization by inversion stability (Qi et al., 2024).

The library functions (`noise_exp.select`, `optimize`, `best_of_n`, `reward_opt`, `stability`; noise_exp/api/)
are imported on first use, so `import noise_exp.<module>` pulls no torch.
"""
from importlib import import_module
from typing import Any

from noise_exp.config import register_resolvers
from noise_exp.errors import NoiseExpError

register_resolvers()

_API = ("select", "optimize", "best_of_n", "reward_opt", "Choice", "Optimized", "BestOfN", "RewardOptimized",
        "SUPPORTED", "stability")
__all__ = ["NoiseExpError", *_API]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("noise_exp.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
