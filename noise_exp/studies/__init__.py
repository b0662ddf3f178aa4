"""The studies: experiments made of many runs, each one module of this package in one pattern (docs/index.md).

A study `<name>` is `noise_exp/studies/<name>.py` with a `Config` dataclass (every knob, typed, no defaults) and
`run(config, command) -> int`; `conf/study/<name>.yaml` holds the knobs' values and, under `quick:`, what its quick
mode changes. One command runs any of them:

    python -m noise_exp.studies <name> [key=value ...]      # quick=true: the study's quick mode
"""
