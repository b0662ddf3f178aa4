"""python -m noise_exp.studies <name> [key=value ...]: run one study (noise_exp/studies/<name>.py) with its config,
conf/study/<name>.yaml; `quick=true` applies the yaml's `quick:` block first."""
from __future__ import annotations

import sys

from noise_exp.cli import ArgumentParser
from noise_exp.errors import exit_on_user_error
from noise_exp.studies.common import command_line, study_config, study_module, study_names


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m noise_exp.studies", description=__doc__.splitlines()[0],
                            epilog=f"studies: {', '.join(study_names())} (their knobs: conf/study/<name>.yaml)")
    parser.add_argument("study", help="the study to run")
    parser.add_argument("overrides", nargs="*", help="key=value: a knob of conf/study/<name>.yaml; quick=true")
    args = parser.parse_args(argv)
    config = study_config(args.study, args.overrides)
    return study_module(args.study).run(config, command_line(args.study, args.overrides))


if __name__ == "__main__":
    sys.exit(main())
