"""Fixtures: a synthetic run folder laid out as in docs/CONVENTIONS.md, and the real server on a free port."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.human_eval.helpers import LiveServer, make_run


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


@pytest.fixture
def live_server(run_folder: Path):
    with LiveServer(run_folder) as server:
        yield server
