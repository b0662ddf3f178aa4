"""The bank on disk: append-only files, concurrent writers, killed writers, corrupt files, keys and scopes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from noise_exp.candidates import BankScope, CandidateBank, StoredCandidate, candidate_key
from noise_exp.errors import NoiseExpError
from tests.support.bank import SCOPE, synthetic
from tests.conftest import ROOT

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from noise_exp.candidates import CandidateBank
    from tests.support.bank import SCOPE, synthetic
    bank, first, batches, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    writer = CandidateBank(bank, create=True).writer(run=f"writer-{first}")
    batch = 0
    while batches < 0 or batch < batches:  # batches < 0: until killed
        start = first + batch * size
        writer.add(SCOPE, synthetic("a prompt " + "x" * 200, range(start, start + size)))
        batch += 1
""")


def writer_process(bank, first: int, batches: int, size: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(bank), str(first), str(batches), str(size)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)


def test_rows_read_back_exactly_and_a_key_is_one_candidate(tmp_path):
    bank = CandidateBank(tmp_path / "bank", create=True)
    first, second = bank.writer("a"), bank.writer("b")
    first.add(SCOPE, synthetic("a cat", range(4)))
    first.add(SCOPE, synthetic("a cat", range(4, 6)))
    second.add(SCOPE, synthetic("a cat", range(4, 8), scores={"aes": 5.5}))  # seeds 4, 5 again, now with a score
    assert len(bank.files()) == 2 and first.written == 6
    contents = bank.read()
    frame = contents.frame.sort_values("seed")
    assert list(frame["seed"]) == list(range(8)) and contents.merged_duplicates == 2
    assert list(frame["stability_cosine"]) == [s / 1000 for s in range(8)]
    # a key found twice is one candidate; each column from the earliest row that has it (the score from the later)
    assert frame["score.aes"].isna().tolist() == [True] * 4 + [False] * 4
    assert set(frame["key"]) == {candidate_key(SCOPE.digest, "a cat", s) for s in range(8)}
    assert contents.scopes == {SCOPE.digest: SCOPE}


def test_two_concurrent_writer_processes_lose_no_row_and_duplicate_none(tmp_path):
    processes = [writer_process(tmp_path / "bank", first, 25, 20) for first in (0, 10_000)]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    bank = CandidateBank(tmp_path / "bank")
    files = bank.files()
    assert len(files) == 2
    raw = pd.concat([pd.read_parquet(path) for path in files])
    assert len(raw) == 2 * 25 * 20 and raw["key"].is_unique  # nothing lost, nothing written twice
    contents = bank.read()
    assert sorted(contents.frame["seed"]) == list(range(500)) + list(range(10_000, 10_500))
    assert contents.merged_duplicates == 0 and not contents.skipped


def test_a_sigkilled_writer_leaves_a_readable_bank_of_whole_batches(tmp_path, capfd):
    bank_dir, size = tmp_path / "bank", 400
    process = writer_process(bank_dir, 0, -1, size)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it while it keeps rewriting its growing file
        files = [p for p in (bank_dir / "parts").glob("*.parquet")] if (bank_dir / "parts").is_dir() else []
        if files and files[0].stat().st_size > 200_000:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    contents = CandidateBank(bank_dir).read()
    assert capfd.readouterr().err == "" and not contents.skipped
    rows = len(contents.frame)
    assert rows >= size and rows % size == 0  # whole appends only, no partial row
    assert sorted(contents.frame["seed"]) == list(range(rows))


def test_a_corrupt_file_is_named_in_one_line_and_the_rest_reads(tmp_path, capsys):
    bank = CandidateBank(tmp_path / "bank", create=True)
    bank.writer().add(SCOPE, synthetic("a cat", range(5)))
    broken = bank.writer()
    broken.add(SCOPE, synthetic("a dog", range(5)))
    data = broken.path.read_bytes()
    broken.path.write_bytes(data[: len(data) // 2])  # a truncated copy, as a full disk or a bad transfer leaves
    (bank.parts / "zzz.parquet").write_bytes(b"not parquet at all")
    contents = bank.read()
    assert sorted(contents.frame["prompt"].unique()) == ["a cat"] and len(contents.frame) == 5
    assert set(contents.skipped) == {broken.path, bank.parts / "zzz.parquet"}
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: bank file ") for line in lines)
    assert str(broken.path) in lines[0] and "zzz.parquet" in lines[1]
    bank.read()
    assert capsys.readouterr().err == ""  # named once per bank, not on every read


def test_scopes_separate_models_and_samplers_but_not_number_spellings():
    base = SCOPE.settings
    assert BankScope({**base, "guidance_scale": 3}).digest == SCOPE.digest  # an override's 3 is the YAML's 3.0
    for key, value in [("weights", "sha256:ffffffffffffffff"), ("dtype", "torch.float16"), ("num_steps", 4),
                       ("timestep_spacing", "trailing"), ("guidance_scale", 1.0), ("inversion_guidance_scale", 2.0),
                       ("height", 32), ("vae", "madebyollin/sdxl-vae-fp16-fix")]:
        other = BankScope({**base, key: value})
        assert other.digest != SCOPE.digest, key
        assert key in SCOPE.differences(other)
        assert candidate_key(other.digest, "a cat", 1) != candidate_key(SCOPE.digest, "a cat", 1)
    assert candidate_key(SCOPE.digest, "a cat", 1) != candidate_key(SCOPE.digest, "a cat", 2)
    assert candidate_key(SCOPE.digest, "a cat", 1) != candidate_key(SCOPE.digest, "a dog", 1)
    with pytest.raises(NoiseExpError, match="weights identity"):
        BankScope({"num_steps": 10})
    assert BankScope.from_settings({"model.weights": "sha256:1", "model.pretrained": "/x/y", "method.num_seeds": 3,
                                    "model.num_steps": 10}).settings == {"num_steps": 10, "weights": "sha256:1"}


def test_a_score_is_read_with_its_own_scorer_and_a_rescore_supersedes_it(tmp_path):
    bank = CandidateBank(tmp_path / "bank", create=True)
    bank.writer("legacy").add(SCOPE, synthetic("a cat", range(3), scores={"aes": 1.0}))  # stored without a scorer
    rescored = synthetic("a cat", range(2), scores={"aes": 2.0})
    for candidate in rescored:
        candidate.scorers = {"aes": "aes@2:b"}
    bank.writer("new").add(SCOPE, rescored)
    frame = bank.read().frame.sort_values("seed")
    assert frame["score.aes"].tolist() == [2.0, 2.0, 1.0]
    assert frame["scorer.aes"].tolist() == ["aes@2:b", "aes@2:b", "unknown"]
    stored = [StoredCandidate.from_row(row) for row in frame.to_dict("records")]
    assert [c.scored_by({"aes": "aes@2:b"}) for c in stored] == [True, True, False]
    assert not stored[0].scored_by({"aes": "aes@3:c"}) and stored[2].scored_by({})
