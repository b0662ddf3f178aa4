"""Atomic file writes that respect the user's umask, and one-line messages for write failures."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from noise_exp.errors import NO_SPACE, PATH_FAULTS, NoiseExpError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it
FILE_MODE = 0o666 & ~UMASK
DIR_MODE = 0o777 & ~UMASK


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and os.replace, so readers never see a partial file.

    The file gets the mode a plain `open(path, "w")` would give it (0666 less the umask), not mkstemp's 0600,
    so colleagues on a shared cluster can read the results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a failed write names no file: name the one being written (a bank's, a run's)
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_failure(error: OSError, where: Path) -> str | None:
    """A one-line explanation of an OSError raised while writing under `where`, or None if it is not a
    storage fault (full disk, quota, read-only or forbidden folder, a file where a folder should be)."""
    target = error.filename or where
    if error.errno in NO_SPACE:
        return f"no space left on the device while writing {target}"
    if error.errno in PATH_FAULTS:
        return f"cannot write {target}: {error.strerror}"
    return None


def writable_folder(path: Path, flag: str) -> Path:
    """`path` checked before any work to be a folder that exists or can be made and written (one line naming
    `flag`, e.g. --out, otherwise)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NoiseExpError(f"{flag} {path} is a file, not a folder")
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NoiseExpError(f"{flag} {path} cannot be made: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise NoiseExpError(f"{flag} {path} cannot be written: {ancestor} is read-only or not yours")
    return path


def writable_file(path: Path, flag: str) -> Path:
    """`path` checked before any work to be a file that can be written in an existing folder."""
    path = Path(path)
    if path.is_dir():
        raise NoiseExpError(f"{flag} {path} is a folder, not a file")
    if not path.absolute().parent.is_dir():
        raise NoiseExpError(f"{flag} {path}: the folder {path.absolute().parent} does not exist")
    writable_folder(path.parent, flag)
    return path
