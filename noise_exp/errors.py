"""The one exception type for errors a user can cause (config, files, weights, numerics).

It is raised with a one-line message and caught once at the entry point (`run.py`), which prints the
message and exits non-zero instead of showing a traceback.
"""


class NoiseExpError(Exception):
    """A user-facing error: bad config, missing file or weights, malformed data, non-finite latents."""
