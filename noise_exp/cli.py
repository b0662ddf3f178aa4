"""The command-line layer: `run.py`'s Hydra entry and the argument parser of the module CLIs.

Both end a user's mistake the same way (docs/CONVENTIONS.md, exit codes): one line `error: <message>` on stderr
and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from noise_exp.errors import NoiseExpError, config_error_message
from noise_exp.files import write_failure


def run_hydra(entry: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function. Hydra's and OmegaConf's config errors (unknown option, misspelt key, bad
    override syntax) exit 2 with one line, like every other user error; a failed sweep names its failed jobs.

    Hydra prints such errors over several lines and exits 1; with HYDRA_FULL_ERROR=1 it raises them instead,
    so they can be caught here. A user who sets HYDRA_FULL_ERROR=1 still gets the full traceback.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from noise_exp.sweep_callbacks import failed_jobs_summary

    unknown = unknown_hydra_flags(sys.argv[1:])
    if unknown:  # Hydra's argparse would print its usage over many lines
        _exit(f"unknown option {unknown[0]}; options go before key=value overrides (see {Path(sys.argv[0]).name} --help)", 2)
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        entry()
    except NoiseExpError as err:  # raised by a sweep's job (a single run exits in `run_cli`)
        _exit(failed_jobs_summary() or str(err), err.exit_code)
    except (HydraException, OmegaConfBaseException) as err:
        if wants_traceback:
            raise
        _exit(config_error_message(err), 2)
    except RuntimeError as err:  # submitit's FailedJobError: sbatch refused the sweep (no controller, bad option)
        refused = submission_failure(err)
        if refused is None or wants_traceback:
            raise
        _exit(refused, 2)
    except (OSError, ValueError) as err:  # Hydra could not make the run folder, its .hydra/ or its log file
        fault = err if isinstance(err, OSError) else err.__cause__
        reason = write_failure(fault, Path.cwd()) if isinstance(fault, OSError) else None
        if reason is None and isinstance(err, ValueError) and _raised_by_hydra(err) and not wants_traceback:
            _exit(str(err), 2)  # e.g. "Only one of --run, --multirun, --cfg, ... can be specified"
        if reason is None or wants_traceback:
            raise
        _exit(f"{reason}; nothing was run", 2)


def submission_failure(err: BaseException) -> str | None:
    """One line for a SLURM submission that sbatch refused (submitit raises FailedJobError from sbatch's failed
    process), naming sbatch's own message; None for any other error."""
    import subprocess

    cause = err.__cause__
    if type(err).__name__ != "FailedJobError" or not isinstance(cause, subprocess.CalledProcessError):
        return None
    command = [str(part) for part in (cause.cmd if isinstance(cause.cmd, (list, tuple)) else [cause.cmd])]
    if not command or Path(command[0]).name != "sbatch":
        return None
    said = "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or f"exit code {cause.returncode}"
    return (f"the SLURM submission failed, nothing was submitted: {said} (is slurmctld reachable? check SLURM_CONF "
            f"and the hydra.launcher settings)")


def unknown_hydra_flags(argv: list[str]) -> list[str]:
    """The options in `argv` that Hydra's command line does not know (overrides never start with '-')."""
    from hydra._internal.utils import get_args_parser

    known = set(get_args_parser()._option_string_actions)
    return [arg for arg in argv if arg.startswith("-") and arg.split("=", 1)[0] not in known]


def _raised_by_hydra(err: BaseException) -> bool:
    """Whether `err` was raised inside Hydra's own code (its command-line checks), not by a job."""
    frame = err.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and f"{os.sep}hydra{os.sep}" in frame.tb_frame.f_code.co_filename


def _exit(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the module CLIs: `-h` prints usage and exits 0; a bad argument raises NoiseExpError, which
    `exit_on_user_error` ends with one line and exit code 2 (plain argparse prints the usage and the message)."""

    def error(self, message: str) -> NoReturn:
        raise NoiseExpError(f"{message} (see {self.prog} --help)")
