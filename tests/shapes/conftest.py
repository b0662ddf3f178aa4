"""Fixtures of the shapes tests: one torch thread for small tensors (shared with the digits tests)."""
from tests.digits.conftest import one_thread  # noqa: F401
