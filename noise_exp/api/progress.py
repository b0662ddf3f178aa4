"""The progress every library function shows: a tqdm bar on stderr and the user's callback per candidate or step."""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

from tqdm.auto import tqdm

from noise_exp.errors import NoiseExpError
from noise_exp.params import flag_param

Callback = Callable[[int, float], None]


class Progress:
    """A tqdm bar over the candidates (off with `progress=False`) and the user's `callback(seed, value)`."""

    def __init__(self, total: int, desc: str, enabled: bool, callback: Callback | None, unit: str = "seed") -> None:
        enabled = flag_param("progress", enabled)
        if callback is not None and not callable(callback):
            raise NoiseExpError(f"callback must be a callable({unit}, value), got {type(callback).__name__}")
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        self.callback = callback
        self.unit = unit
        self.best = -math.inf

    def batch(self, count: int) -> None:
        self.bar.update(count)

    def candidate(self, seed: int, value: float) -> None:
        if value > self.best:
            self.best = value
            self.bar.set_postfix_str(f"best={value:.4f} ({self.unit} {seed})", refresh=False)
        if self.callback is not None:
            self.callback(seed, value)

    def step(self, step: int, value: Any) -> None:
        """One optimization step done; `value` holds the step's score of the one noise ([1] tensor)."""
        self.batch(1)
        self.candidate(step, float(value[0]))

    def close(self) -> None:
        self.bar.close()
