"""Reading what W&B wrote offline, for the tests: a run's `.wandb` transaction log decoded with W&B's own protobufs
(W&B 0.31 ships no Python reader for it), and an environment with no user settings, credentials or network."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def isolate_wandb(monkeypatch, tmp_path: Path) -> None:
    """No user settings, credentials or network of this machine reach W&B."""
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_DIR",
                "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / "netrc"))


def read_wandb_records(path: Path) -> list:
    """Records of a .wandb file (LevelDB-style log: 7-byte header, 32 KiB blocks, chunked records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk
            records.append(pb.Record.FromString(pending))
            pending = b""
    return records


def read_complete_log(path: Path, timeout_s: float = 30) -> list:
    """The records once the run's exit record is on disk (W&B's writer process may still be flushing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def logged(records: list) -> tuple[set[str], dict[str, list[str]], set[str]]:
    """(history keys, config key -> its JSON values in order, summary keys) of a run's records; a media value (image, table)
    is stored under nested keys (`results` -> `results/path`, ...) and counts under its top-level key."""
    history, config, summary = set(), defaultdict(list), set()
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history |= {item.key or item.nested_key[0] for item in record.history.item}
        elif kind == "config":
            for item in record.config.update:
                config[item.key or item.nested_key[0]].append(item.value_json)
        elif kind == "summary":
            summary |= {item.key or item.nested_key[0] for item in record.summary.update}
        elif kind == "run":
            for item in record.run.config.update:
                config[item.key or item.nested_key[0]].append(item.value_json)
    return history, config, summary


def summary_values(records: list) -> dict[str, Any]:
    """The run's final summary: key -> decoded JSON value (later updates win)."""
    values: dict[str, Any] = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                values["/".join(item.nested_key) if item.nested_key else item.key] = json.loads(item.value_json)
    return values


def logged_tables(records: list, run_dir: Path) -> dict[str, dict]:
    """History key -> the table JSON (`columns`, `data`) it points to, for every logged table and chart table (a
    media value is logged as one item per field: nested keys `[key, "_type"]`, `[key, "path"]`, ...)."""
    fields: dict[str, dict[str, Any]] = defaultdict(dict)
    for record in records:
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                if len(item.nested_key) > 1:
                    fields["/".join(item.nested_key[:-1])][item.nested_key[-1]] = json.loads(item.value_json)
    return {key: json.loads((run_dir / "files" / value["path"]).read_text()) for key, value in fields.items()
            if value.get("_type") in ("table-file", "table") and value.get("path")}


def offline_runs(folder: Path) -> list[tuple[Path, list]]:
    """(offline-run folder, its records) for each W&B offline run under `folder`/wandb."""
    runs = sorted(Path(folder).glob("wandb/offline-run-*"))
    return [(run, read_complete_log(next(run.glob("run-*.wandb")))) for run in runs]


def run_record(records: list) -> Any:
    """The run's `run` record (group, display name, job type, config)."""
    return next(r.run for r in records if r.WhichOneof("record_type") == "run")
