"""One writer per run folder: a lock file naming its holder, safe on shared (NFS) filesystems.

The lock is taken by hard-linking a complete temp file to `<run_dir>/.lock` (atomic on NFS, unlike O_EXCL on old
clients), so a reader never sees half a holder record. A holder refreshes the lock's mtime every `heartbeat_s`
seconds. A lock is stale, and taken over, when its holder is a dead process on this host (pid gone, or reused by a
process that started later), or when its heartbeat is older than `stale_after_s` (a holder on another host that
died, e.g. a SLURM job killed on another node).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noise_exp.errors import NoiseExpError
from noise_exp.files import FILE_MODE

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


def _process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunLock:
    """`with RunLock(run_dir):` holds the folder's lock; a second writer gets a NoiseExpError naming the holder."""

    run_dir: Path
    stale_after_s: float = 300.0
    heartbeat_s: float = 30.0
    _token: str = field(default_factory=lambda: uuid.uuid4().hex, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    held: bool = False

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / LOCK_NAME

    def holder_record(self) -> dict[str, Any]:
        pid = os.getpid()
        return {"host": socket.gethostname(), "pid": pid, "start_ticks": _process_start_ticks(pid),
                "token": self._token, "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID")}

    def acquire(self) -> "RunLock":
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._try_link():
                self.held = True
                self._start_heartbeat()
                return self
            holder = self.read_holder()
            reason = self.stale_reason(holder)
            if reason is None:
                raise NoiseExpError(f"{self.run_dir} is in use by {self.describe(holder)}; wait for it to finish or "
                                    f"write to another folder (hydra.run.dir=...)")
            log.warning("taking over the stale lock of %s (%s)", self.run_dir, reason)
            self._break(holder)
        raise NoiseExpError(f"could not take the lock {self.path}: another process keeps taking it")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held and (self.read_holder() or {}).get("token") == self._token:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- the holder -----------------------------------------------------------------------------------------
    def read_holder(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def stale_reason(self, holder: dict[str, Any] | None) -> str | None:
        """Why the lock can be taken over, or None while its holder may still be running."""
        if holder is None:
            return "released"
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "released"
        if age > self.stale_after_s:
            return f"no heartbeat for {age:.0f}s"
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            pid = holder["pid"]
            if not _pid_alive(pid):
                return f"pid {pid} is gone"
            ticks = _process_start_ticks(pid)
            if holder.get("start_ticks") is not None and ticks is not None and ticks != holder["start_ticks"]:
                return f"pid {pid} now belongs to another process"
        return None

    @staticmethod
    def describe(holder: dict[str, Any] | None) -> str:
        if not holder:
            return "another process (unreadable lock file)"
        job = f", SLURM job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
        return f"pid {holder.get('pid')} on {holder.get('host')}{job} (since {holder.get('since')})"

    # --- mechanics ------------------------------------------------------------------------------------------
    def _try_link(self) -> bool:
        fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=self.run_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)
                json.dump(self.holder_record(), handle)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _break(self, holder: dict[str, Any] | None) -> None:
        """Move a stale lock aside; give it back if a new holder took the lock between the check and the move."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{self._token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except ValueError:
            moved = {}
        if holder and isinstance(moved, dict) and moved.get("token") != holder.get("token"):
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    os.utime(self.path)
                except OSError:
                    return

        self._stop.clear()
        self._thread = threading.Thread(target=beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()
