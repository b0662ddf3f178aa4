"""`python -m noise_exp.score <run_dir>... [evaluator=[hpsv2,aes,...]] [evaluator.hpsv2.checkpoint=...]`

Scores finished run folders in place (adds columns to results.csv) and refreshes the report of a folder that has
one. Evaluator configs are composed from this repository's conf/evaluator with Hydra's compose API; without an
`evaluator=` override the run's own `.hydra/config.yaml` evaluator section is used.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from noise_exp.config import CONF_DIR  # noqa: F401  (the conf/ folder, for callers and tests)
from noise_exp.cli import ArgumentParser
from noise_exp.errors import NoiseExpError, config_error_message, exit_on_user_error


def compose_evaluators(overrides: Sequence[str]):
    """The `evaluator` group composed from conf/ with the given Hydra overrides (`evaluator=[...]` first)."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from noise_exp.config import compose_config

    overrides = [("+" + item) if item.startswith("evaluator=") else item for item in overrides]
    try:
        config = compose_config(overrides, config_name=None)
    except HydraException as error:
        raise NoiseExpError(f"cannot compose evaluators: {config_error_message(error)}") from None
    group = config.get("evaluator")
    return OmegaConf.to_container(group, resolve=True) if group else {}


def evaluators_of_run(run_dir: Path):
    """The run's own `evaluator` group, from its `.hydra/config.yaml` (targets saved before a move upgraded)."""
    from omegaconf import OmegaConf

    from noise_exp.config import upgrade_targets

    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise NoiseExpError(f"no evaluator=[...] given and {saved} does not exist")
    group = upgrade_targets(OmegaConf.load(saved)).get("evaluator")
    return OmegaConf.to_container(group, resolve=True) if group else {}


def refresh_report(run_dir: Path) -> Path | None:
    """Rewrite `<run_dir>/report` from the current results.csv when the folder has one; returns report.md."""
    from noise_exp.report import write_report

    if not (Path(run_dir) / "report").is_dir():
        return None
    return write_report([Path(run_dir)], Path(run_dir) / "report").markdown


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m noise_exp.score", description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("items", nargs="+", metavar="RUN_DIR | KEY=VALUE",
                        help="run folders to score, and Hydra overrides of the evaluator group, e.g. "
                             "evaluator=[hpsv2,aes] evaluator.hpsv2.checkpoint=/path/HPS_v2_compressed.pt")
    return parser


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    from noise_exp.evaluators import build_evaluators
    from noise_exp.rundir.scoring import score_run

    items = _parser().parse_args(argv).items
    run_dirs = [Path(item) for item in items if "=" not in item]
    overrides = [item for item in items if "=" in item]
    if not run_dirs:
        raise NoiseExpError("no run folder given (see python -m noise_exp.score --help)")
    explicit = any(item.startswith(("evaluator=", "+evaluator=")) for item in overrides)
    shared = build_evaluators(compose_evaluators(overrides)) if explicit else None
    for run_dir in run_dirs:
        evaluators = shared if shared is not None else build_evaluators(evaluators_of_run(run_dir))
        if not evaluators:
            raise NoiseExpError(f"no evaluators selected for {run_dir}")
        frame = score_run(run_dir, evaluators)
        refresh_report(run_dir)
        means = ", ".join(f"{name}={frame[name].mean():.4f}" for name in evaluators)
        print(f"{run_dir}: scored {len(frame)} rows ({means})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
