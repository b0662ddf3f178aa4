"""The settings of a sweep: which result-determining config keys differ between its runs, as table columns.

Every Hydra job keeps the overrides it was started with (`.hydra/overrides.yaml`) and its composed config
(`.hydra/config.yaml`, group choices in `.hydra/hydra.yaml`). A key overridden in any job that determines results
(`noise_exp.settings.is_result_key`: not a shard, evaluator, logger or launcher key) is looked up in every job, from
its overrides or else its composed config, so `model.num_steps=5` in one job and the default in another still
separate. Keys with one value in all jobs are no columns, nor are dataset keys that only repeat the dataset name
(`dataset=pickapic,drawbench`: the tables split by dataset anyway). A column is named by the key's last dotted segment
(`model.num_steps` -> `num_steps`), or by the whole key when two keys share it or it names a table column.
"""
from __future__ import annotations

import argparse

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import pandas as pd
import yaml

from noise_exp.errors import NoiseExpError
from noise_exp.params import real_param
from noise_exp.settings import flatten, is_result_key, override_key

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "config.yaml"  # defaults for runs without `.hydra/`
UNSET = "-"  # the value of a key a job neither overrides nor has in its config (or a run without `.hydra/`)


@dataclass(frozen=True)
class SweepSettings:
    """Setting columns of a sweep: `keys` maps each column to its dotted config key (in column order), `values`
    maps each run folder to its value per column (canonical strings: `100.0` and `100` are both `100`)."""

    keys: dict[str, str]
    values: dict[Path, dict[str, str]]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def add_columns(self, frame: pd.DataFrame, run_dir: Path, position: int = 1) -> pd.DataFrame:
        """Insert this run's setting columns into its results frame (in place, from `position` on)."""
        for offset, (column, value) in enumerate(self.values[Path(run_dir)].items()):
            frame.insert(position + offset, column, value)
        return frame


def canonical(value: Any) -> str:
    """A config value as a comparable string: numbers without a spurious `.0`, booleans and null in YAML spelling."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return canonical(float(text)) if text.lower() not in {"nan", "inf", "-inf", "infinity"} else text
        except ValueError:
            pass
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return parsed if isinstance(parsed, str) else canonical(parsed)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
        whole = math.isfinite(number) and number.is_integer() and abs(number) < 1e15
        return str(int(number)) if whole else repr(number)
    return json.dumps(value, sort_keys=True, default=str)


def typed(value: Any) -> Any:
    """A canonical setting string back as the number it spells (`"5"` -> 5, `"0.1"` -> 0.1); others as they are."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise NoiseExpError(f"{path} is not readable YAML ({type(err).__name__}); restore it from the job's "
                            f"output or remove the run from the sweep") from None


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep folder's multirun.yaml says Hydra swept: its command-line overrides, its sweeper's params as
    override lines, and the sweeper class."""
    task: list[str]
    params: list[str]
    sweeper: str


def read_sweep_spec(sweep_dir: Path) -> SweepSpec | None:
    """The sweep's overrides as Hydra saved them in `<sweep_dir>/multirun.yaml`; None when there is none."""
    hydra = (_read_yaml(Path(sweep_dir) / "multirun.yaml") or {}).get("hydra") or {}
    if not hydra:
        return None
    sweeper = hydra.get("sweeper") or {}
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    task = [str(o) for o in (hydra.get("overrides") or {}).get("task") or []]
    return SweepSpec(task, params, str(sweeper.get("_target_", "")))


@dataclass(frozen=True)
class _Job:
    overrides: dict[str, str]  # result keys this job overrode -> the override's value text
    config: dict[str, Any]     # the composed config, flattened to dotted keys
    choices: dict[str, Any]    # config group choices (`model` -> `tiny_sd`)

    def value(self, key: str) -> str:
        """The job's value of `key`: the composed config's leaf, else its group choice, else its override."""
        if key in self.config:
            return canonical(self.config[key])
        if key in self.choices:
            return canonical(self.choices[key])
        return canonical(self.overrides[key]) if key in self.overrides else UNSET


def _read_job(run_dir: Path) -> _Job:
    hydra_dir = Path(run_dir) / ".hydra"
    listed = _read_yaml(hydra_dir / "overrides.yaml") or []
    if not isinstance(listed, list):
        raise NoiseExpError(f"{hydra_dir / 'overrides.yaml'} is not a list of overrides")
    overrides = {}
    for override in map(str, listed):
        key = override_key(override)
        if is_result_key(key):
            overrides[key] = UNSET if override.lstrip().startswith("~") else override.partition("=")[2]
    config = _read_yaml(hydra_dir / "config.yaml")
    hydra_node = _read_yaml(hydra_dir / "hydra.yaml") or {}
    choices = ((hydra_node.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    return _Job(overrides, flatten(config) if isinstance(config, Mapping) else {},
                {str(k).replace("/", "."): v for k, v in choices.items()})


def tolerance_table(node: Any, where: object) -> dict[str, float]:
    """A `report.tie_tolerance` node as {metric: tolerance >= 0}, or a one-line error naming `where` it came from."""
    if not isinstance(node, Mapping):
        raise NoiseExpError(f"report.tie_tolerance of {where} must map metrics to tolerances, got {node!r}")
    return {str(metric): real_param(f"report.tie_tolerance.{metric} of {where}", value, 0.0)
            for metric, value in node.items()}


def tie_tolerances(run_dirs: Sequence[Path], overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """{metric: tolerance} for winning rates: `report.tie_tolerance` of the runs' `.hydra/config.yaml`
    (conf/config.yaml's for runs without one), `overrides` on top. Runs that disagree on a metric not in `overrides`
    are an error."""
    default = ((_read_yaml(DEFAULT_CONFIG) or {}).get("report") or {}).get("tie_tolerance") or {}
    found: dict[str, dict[float, Path]] = {}
    for run_dir in run_dirs:
        config = _read_yaml(Path(run_dir) / ".hydra" / "config.yaml")
        node = (config.get("report") or {}).get("tie_tolerance") if isinstance(config, Mapping) else None
        for metric, tolerance in tolerance_table(default if node is None else node, run_dir).items():
            found.setdefault(metric, {}).setdefault(tolerance, Path(run_dir))
    overrides = {str(k): float(v) for k, v in (overrides or {}).items()}
    for metric, values in found.items():
        if len(values) > 1 and metric not in overrides:
            (a, run_a), (b, run_b) = list(values.items())[:2]
            raise NoiseExpError(f"the runs disagree on report.tie_tolerance.{metric} ({a:g} in {run_a}, {b:g} in "
                                f"{run_b}); pass --tie-tolerance {metric}=<value> to choose one")
    return {**{metric: next(iter(values)) for metric, values in found.items()}, **overrides}


def tolerance_option(text: str) -> tuple[str, float]:
    """`--tie-tolerance digit_classifier=0.001` as (metric, tolerance); argparse turns a ValueError into usage."""
    metric, _, value = text.partition("=")
    metric, tolerance = metric.strip(), float(value)
    if not metric or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(text)
    return metric, tolerance


def add_tie_tolerance_option(parser: argparse.ArgumentParser) -> None:
    """`--tie-tolerance METRIC=VALUE` (repeatable) of the commands that write a report; read it as
    `dict(args.tie_tolerance)`."""
    parser.add_argument("--tie-tolerance", type=tolerance_option, action="append", default=[], metavar="METRIC=VALUE",
                        help="winning rates count |A - B| <= VALUE as a tie for METRIC (default: report.tie_tolerance "
                             "of the runs' config)")


def column_names(keys: Sequence[str], reserved: Collection[str] = ()) -> dict[str, str]:
    """{column: key}: the last dotted segment, or the whole key when that is shared by two keys or reserved
    (a results or table column); `setting.<key>` when the whole key is reserved too (e.g. the `dataset` group)."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    names = {}
    for key, short in zip(keys, last):
        name = short if last.count(short) == 1 and short not in reserved else key
        names[name if name not in reserved else f"setting.{key}"] = key
    return names


def _renames_dataset(key: str, values: Sequence[str], dataset_names: Sequence[str]) -> bool:
    """A dataset key whose values match the jobs' dataset names one to one (`dataset=pickapic,drawbench`) only
    repeats the results' `dataset` column."""
    if key != "dataset" and not key.startswith("dataset."):
        return False
    pairs = set(zip(values, dataset_names))
    return len(pairs) == len(set(values)) == len(set(dataset_names))


def sweep_settings(run_dirs: Sequence[Path], reserved: Collection[str] = ()) -> SweepSettings:
    """The setting columns of these runs: result keys overridden in any job whose values differ between jobs."""
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    jobs = {run_dir: _read_job(run_dir) for run_dir in run_dirs}
    swept = list(dict.fromkeys(key for job in jobs.values() for key in job.overrides))
    values = {run_dir: {key: job.value(key) for key in swept} for run_dir, job in jobs.items()}
    names = [job.value("dataset.name") for job in jobs.values()]
    varying = [key for key in swept if len({row[key] for row in values.values()}) > 1
               and not _renames_dataset(key, [row[key] for row in values.values()], names)]
    keys = column_names(varying, reserved)
    return SweepSettings(keys, {run_dir: {column: row[key] for column, key in keys.items()}
                                for run_dir, row in values.items()})


def describe(frame_row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """`num_steps=5 lr=10` for a row holding these setting columns ("all runs" without columns)."""
    return " ".join(f"{column}={frame_row[column]}" for column in columns) or "all runs"


def natural_key(value: Any) -> tuple:
    """Sort setting values as numbers when they are numbers (`5` before `10`), else as text."""
    try:
        return 0, float(value), ""
    except (TypeError, ValueError):
        return 1, 0.0, str(value)


def check_unique_prompts(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Each (setting, dataset, prompt_id, variant) must come from one row of one run: overlapping shards or a
    setting run twice would count prompts twice. Raises one line naming the runs."""
    keys = [*columns, *(["dataset"] if "dataset" in frame.columns else []), "prompt_id", "variant"]
    repeated = frame[frame.duplicated(keys, keep=False)]
    if repeated.empty:
        return
    first = repeated.iloc[0]
    same = repeated[(repeated[keys] == first[keys]).all(axis=1)]
    runs = list(dict.fromkeys(map(str, same["run"])))
    times = "twice" if len(same) == 2 else f"{len(same)} times"
    where = f"dataset {first['dataset']} " if "dataset" in frame.columns else ""
    raise NoiseExpError(
        f"{where}prompt {first['prompt_id']} (variant {first['variant']}) appears {times} for the setting "
        f"'{describe(first, columns)}', in run{'s' if len(runs) > 1 else ''} {', '.join(runs)}: the runs overlap; "
        f"remove the repeated run or pass --pool to pool them anyway")
