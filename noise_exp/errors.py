"""The one exception type for errors a user can cause (config, files, weights, numerics).

It is raised with a one-line message and caught once at the entry point (`run.py`, each module's `main`), which
prints `error: <message>` and exits with its `exit_code` (2; 130 when interrupted) instead of a traceback.
Hydra's and OmegaConf's own config errors are made one line by `config_error_message`.
"""
from __future__ import annotations

import errno
import functools
import sys
from typing import Any, Callable

# errno values of a storage fault, shared with noise_exp.files.write_failure
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
PATH_FAULTS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)


class NoiseExpError(Exception):
    """A user-facing error: bad config, missing file or weights, malformed data, non-finite latents."""

    exit_code = 2


class RunInterrupted(NoiseExpError):
    """Ctrl-C (SIGINT) during a run: finished prompts are kept; exit code 130 as for any interrupted command."""

    exit_code = 130


def exit_on_user_error(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command-line `main`: a NoiseExpError becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except NoiseExpError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return err.exit_code
        except BrokenPipeError:  # the reader went away (`... | head -2`): what it read is all it wanted
            _silence_stdout()
            return 0
        except OSError as err:
            message = file_fault_message(err)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr, flush=True)
            return NoiseExpError.exit_code

    return wrapper


def file_fault_message(error: OSError) -> str | None:
    """A file-system fault (full disk, read-only, missing or forbidden path, a file where a folder should be) as
    one line naming the file, or None for any other OSError."""
    if error.errno in NO_SPACE:
        return f"no space left on the device while writing {error.filename or 'a file'}"
    if error.errno in (*PATH_FAULTS, errno.ENOENT) and error.filename:
        return f"{error.filename}: {error.strerror}"
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not raise BrokenPipeError again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def config_error_message(error: BaseException) -> str:
    """A Hydra or OmegaConf error as one line: its message and its cause's, without OmegaConf's `full_key:` and
    `object_type=` lines, Hydra's config search path or links to its docs."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    if isinstance(error, MissingMandatoryValue) and error.full_key:
        return f"{error.full_key} is not set: add {error.full_key}=<value> to the command"
    if isinstance(error, OverrideParseException):
        return f"cannot parse the override {error.override!r}: {_message_lines(error.message)[0]}"
    parts = _message_lines(str(error))
    if isinstance(error, MissingConfigException) and error.options:
        parts = [f"{parts[0]}; the options are {', '.join(error.options)}"]
    elif isinstance(error, OmegaConfBaseException) and getattr(error, "full_key", None):
        parts.append(f"(at {error.full_key})")
    if isinstance(error.__cause__, OmegaConfBaseException):
        parts.append(f"({' '.join(_message_lines(str(error.__cause__)))})")
    return " ".join(parts)


def _message_lines(text: str) -> list[str]:
    """The unindented lines of a message up to Hydra's trailer (detail lines are indented)."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("Config search path:", "See https://")):
            break
        if line.strip() and not line[0].isspace():
            lines.append(line.strip())
    return lines or [text.strip()]
