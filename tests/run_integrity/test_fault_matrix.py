"""The fault matrix (tests/run_integrity/fault_cases.py): every fault gets its exit code, one line, nothing lost."""
from __future__ import annotations

import pytest

from tests.run_integrity.fault_cases import FAULTS, IS_ROOT, installed, judge, run_matrix

# The module fixture runs every fault (two commands at a time): once, on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fault_matrix")]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_matrix(tmp_path_factory.mktemp("faults"))


def test_the_matrix_has_at_least_25_distinct_faults():
    assert len({f.name for f in FAULTS}) == len(FAULTS) >= 25


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_answered_with_one_line_and_nothing_lost(fault, outcomes):
    if fault.needs_root and not IS_ROOT:
        pytest.skip("mounts a small tmpfs: needs root (CI runs as root)")
    if not installed(fault):
        pytest.skip(f"drives {fault.requires}, which is not installed (`make slurm-up` installs it)")
    assert judge(fault, outcomes[fault.name]) == []
