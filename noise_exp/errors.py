"""The one exception type for errors a user can cause (config, files, weights, numerics).

It is raised with a one-line message and caught once at the entry point (`run.py`), which prints the
message and exits non-zero instead of showing a traceback.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable


class NoiseExpError(Exception):
    """A user-facing error: bad config, missing file or weights, malformed data, non-finite latents."""


def exit_on_user_error(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command-line `main`: a NoiseExpError becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except NoiseExpError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return 2

    return wrapper
