"""What every study shares: its config (conf/study/<name>.yaml read into the study's `Config` dataclass), the
command line it records, committed files read from the repository root, and the measured block it writes into a
doc."""
from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from noise_exp.config import CONF_DIR, PROJECT_ROOT
from noise_exp.errors import NoiseExpError, config_error_message
from noise_exp.files import atomic_write_bytes
from noise_exp.params import flag_param

STUDY_CONF = CONF_DIR / "study"
QUICK = "quick"  # the key of a study yaml's quick block, and the command-line switch that applies it


def study_names() -> list[str]:
    """The studies: one per conf/study/<name>.yaml."""
    return sorted(path.stem for path in STUDY_CONF.glob("*.yaml"))


def study_module(name: str) -> ModuleType:
    """noise_exp.studies.<name>, or a one-line error naming the studies."""
    if name not in study_names():
        raise NoiseExpError(f"unknown study {name!r}; the studies: {', '.join(study_names())}")
    return importlib.import_module(f"noise_exp.studies.{name}")


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """(key, value) of each `key=value`, in Hydra's override syntax (lists `[a,b]`, `null`, quoting)."""
    from hydra.errors import HydraException
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for text in overrides:
        if "=" not in text:
            raise NoiseExpError(f"{text!r} is not a key=value override")
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise NoiseExpError(config_error_message(err)) from None
    for override in parsed:
        if override.is_sweep_override() or override.is_add() or override.is_delete() or override.is_force_add():
            raise NoiseExpError(f"{override.input_line!r}: a study's knobs take one value each (key=value)")
    return [(override.key_or_group, override.value()) for override in parsed]


def study_config(name: str, overrides: Sequence[str] = ()) -> Any:
    """The study's `Config`: conf/study/<name>.yaml, then its `quick:` block if `quick=true` is given, then the
    other overrides. An unknown key, a value of the wrong type or a missing one is a one-line error."""
    from omegaconf import ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    module = study_module(name)
    knobs = [field.name for field in dataclasses.fields(module.Config)]
    quick, changes = False, {}
    for key, value in parse_overrides(overrides):
        if key == QUICK:
            quick = flag_param(QUICK, value)
        elif key.split(".")[0] not in knobs:
            raise NoiseExpError(f"study {name}: unknown knob {key!r}; its knobs: {', '.join(knobs)}")
        else:
            changes[key] = value
    try:
        values = OmegaConf.load(STUDY_CONF / f"{name}.yaml")
        quick_block = values.pop(QUICK, None)
        if quick and quick_block is None:
            raise NoiseExpError(f"study {name} has no quick mode (conf/study/{name}.yaml has no `quick:` block)")
        config = OmegaConf.merge(OmegaConf.structured(module.Config), values, quick_block if quick else {})
        # a list knob the yaml fills (models, sizes, guidance, ...) set to [] would run nothing and exit 0
        filled = [key for key, value in config.items() if isinstance(value, ListConfig) and len(value)]
        for key, value in changes.items():
            config.merge_with(_nested(key, value))
        empty = [key for key in filled if not len(config[key])]
        if empty:
            raise NoiseExpError(f"study {name}: {', '.join(empty)} needs at least one value")
        return OmegaConf.to_object(config)
    except OmegaConfBaseException as err:
        raise NoiseExpError(f"study {name}: {config_error_message(err)}") from None


def _nested(key: str, value: Any) -> dict:
    """{'a': {'b': value}} for the key 'a.b'."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def project_path(path: Path) -> Path:
    """A committed file's path: relative ones are read from the repository root, whatever the working folder."""
    return path if path.is_absolute() else PROJECT_ROOT / path


def shown(path: Path) -> str:
    """`path` relative to the repository root when it is inside it (what summaries print)."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def command_line(name: str, overrides: Sequence[str]) -> str:
    """The command that runs a study with these overrides (what summaries and docs record)."""
    return " ".join(["python -m noise_exp.studies", name, *overrides])


BEGIN, END = "<!-- {}:begin -->", "<!-- {}:end -->"


def write_doc_block(doc: Path, marker: str, block: str) -> None:
    """Replace the measured block of `doc`, between its `<!-- marker:begin -->` and `<!-- marker:end -->` lines."""
    begin, end = BEGIN.format(marker), END.format(marker)
    text = doc.read_text(encoding="utf-8") if doc.is_file() else f"{begin}\n{end}\n"
    if begin not in text or end not in text:
        raise NoiseExpError(f"{doc} has no {begin} ... {end} block to write the table into")
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{block}\n{end}", text, flags=re.S)
    atomic_write_bytes(doc, text.encode("utf-8"))
