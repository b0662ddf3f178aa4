"""python -m noise_exp.studies <name> [key=value ...]: run one study (noise_exp/studies/<name>.py) with its config,
conf/study/<name>.yaml; `quick=true` applies the yaml's `quick:` block first."""
from __future__ import annotations

import dataclasses
import sys

from noise_exp.cli import ArgumentParser
from noise_exp.errors import exit_on_user_error
from noise_exp.studies.common import QUICK, STUDY_CONF, command_line, study_config, study_module, study_names


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(prog="python -m noise_exp.studies", description=" ".join(__doc__.split()),
                            epilog=_epilog(argv[0] if argv else ""))
    parser.add_argument("study", help="the study to run")
    parser.add_argument("overrides", nargs="*", help="key=value: a knob of conf/study/<name>.yaml; quick=true")
    args = parser.parse_args(argv)
    config = study_config(args.study, args.overrides)
    return study_module(args.study).run(config, command_line(args.study, args.overrides))


def _epilog(name: str) -> str:
    """The studies, or with `<name> --help` that study's knobs."""
    if name not in study_names():
        return f"studies: {', '.join(study_names())} (their knobs: conf/study/<name>.yaml)"
    knobs = [field.name for field in dataclasses.fields(study_module(name).Config)]
    has_quick = f"\n{QUICK}:" in (STUDY_CONF / f"{name}.yaml").read_text()
    quick = "; quick=true: its quick mode" if has_quick else "; no quick mode"
    return f"{name}'s knobs (conf/study/{name}.yaml): {', '.join(knobs)}{quick}"


if __name__ == "__main__":
    sys.exit(main())
