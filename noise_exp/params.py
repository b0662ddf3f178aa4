"""Checked config values: each returns the value in its type or raises a one-line error naming the config key."""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from noise_exp.errors import NoiseExpError


def integer_param(key: str, value: Any, minimum: int) -> int:
    """`value` as an int >= minimum (100.0 and numpy's integers count), or a one-line error naming the config key."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise NoiseExpError(f"{key} must be an integer, got {value!r}")
    if value < minimum:
        raise NoiseExpError(f"{key} must be >= {minimum}, got {value!r}")
    return int(value)


def real_param(key: str, value: Any, minimum: float, below: float = math.inf) -> float:
    """`value` as a finite float in [minimum, below), or a one-line error naming the config key."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise NoiseExpError(f"{key} must be a finite number, got {value!r}")
    if not minimum <= value < below:
        bound = f"in [{minimum}, {below})" if math.isfinite(below) else f">= {minimum}"
        raise NoiseExpError(f"{key} must be {bound}, got {value!r}")
    return float(value)


def positive_param(key: str, value: Any) -> float:
    """`value` as a finite float > 0 (a step size of 0 would hand back the starting noise as "optimized")."""
    value = real_param(key, value, 0.0)
    if value == 0.0:
        raise NoiseExpError(f"{key} must be > 0, got {value!r}")
    return value


def flag_param(key: str, value: Any) -> bool:
    """`value` if it is true or false, or a one-line error naming the config key."""
    if not isinstance(value, bool):
        raise NoiseExpError(f"{key} must be true or false, got {value!r}")
    return value


def choice_param(key: str, value: Any, choices: Sequence[str]) -> str:
    """`value` if it is one of `choices`, or a one-line error naming the config key."""
    if value not in choices:
        raise NoiseExpError(f"unknown {key} {value!r}; choose {' or '.join(choices)}")
    return value
