"""Weights & Biases tracking of a job (config, per-prompt scores, stability traces, image pairs; named by its swept
settings) and of a sweep's merge step (means and winning rates per setting, one bar per setting, curves against each
numeric swept key), all in the sweep's group.

W&B is a side channel: a run must never block or fail because of it. Every public method turns a
W&B error into a logged warning; `init` and `finish` are bounded by timeouts; an online run that cannot
start falls back to offline files in the run folder (upload later with `wandb sync`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import pandas as pd

from noise_exp.logging.base import ImagePair

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
ID_COLUMNS = frozenset({"prompt_id", "seed"})  # numbers that are identifiers, not measurements
WIN_RATE_COLUMNS = ("win_rate", "winning_rate", "rate")
COMPARISON_COLUMNS = ("dataset", "a", "b", "comparison")
REPO_ROOT = Path(__file__).resolve().parents[2]

Method = TypeVar("Method", bound=Callable[..., Any])


def _never_raise(method: Method) -> Method:
    """Run a logger method; any exception becomes one warning per method and the run goes on."""

    @functools.wraps(method)
    def guarded(self: "WandbLogger", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the tracker must not end an experiment
            if method.__name__ not in self._warned:
                self._warned.add(method.__name__)
                log.warning("W&B %s failed, the run goes on without it: %s: %s",
                            method.__name__, type(error).__name__, error)
            return None

    return guarded  # type: ignore[return-value]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:  # numpy and torch scalars
            value = value.item()
        except (AttributeError, ValueError, TypeError):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
    return float(value) if math.isfinite(value) else None


def _jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain JSON types (paths and other objects as strings)."""
    return json.loads(json.dumps(dict(config), default=str))


def swept_keys(sweep_dir: Path) -> list[str]:
    """The keys a Hydra sweep varies (`model.num_steps=5,10` on the command line or under `hydra.sweeper.params`),
    read from the sweep folder's multirun.yaml; [] when there is none."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from noise_exp.report.sweep import read_sweep_spec

    spec = read_sweep_spec(sweep_dir)
    if spec is None:
        return []
    parsed = OverridesParser.create().parse_overrides([*spec.task, *spec.params])
    return list(dict.fromkeys(o.key_or_group.replace("/", ".") for o in parsed if o.is_sweep_override()))


def sweep_job_name(run_dir: Path) -> str | None:
    """A sweep job's readable name, its values of the swept result keys: `num_steps=5,lr=0.1` (the key's last
    segment, as in the merged report's columns); None outside a sweep or when the job has no saved overrides."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from noise_exp.report.sweep import canonical, column_names
    from noise_exp.report.tables import RESERVED
    from noise_exp.settings import is_result_key

    run_dir = Path(run_dir)
    keys = swept_keys(run_dir.parent)
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not keys or not saved.is_file():
        return None
    keys = [key for key in keys if is_result_key(key)] or keys
    parsed = OverridesParser.create().parse_overrides([str(o) for o in yaml.safe_load(saved.read_text()) or []])
    values = {o.key_or_group.replace("/", "."): canonical(o.get_value_element_as_str()) for o in parsed}
    return ",".join(f"{column}={values.get(key, '-')}" for column, key in column_names(keys, RESERVED).items())


def setting_label(row: Mapping[str, Any], settings: Sequence[str]) -> str:
    """`num_steps=5,lr=0.1`: a row's values of the setting columns, as summary keys and chart labels name them."""
    return ",".join(f"{column}={row[column]}" for column in settings)


def sweep_group(run_dir: Path) -> str | None:
    """The sweep a run folder belongs to, named after the sweep folder (`<date>_<time>` under multirun/),
    or None for a single run. The merge step, which runs in the sweep folder itself, gets the same name."""
    run_dir = Path(run_dir).resolve()
    for sweep_dir in (run_dir, run_dir.parent):
        if (sweep_dir / "multirun.yaml").exists():
            return f"{sweep_dir.parent.name}_{sweep_dir.name}"
    return None


class WandbLogger:
    """`logger=wandb`. Build with `hydra.utils.instantiate(cfg.logger)`; see conf/logger/wandb.yaml."""

    def __init__(self, project: str = "noise-exp", entity: str | None = None, group: str | None = None,
                 name: str | None = None, job_type: str = "run", mode: str = "offline", dir: str | None = None,
                 tags: Sequence[str] = (), notes: str | None = None, log_images: bool = True,
                 max_image_pairs: int = 50, max_table_images: int = 100, max_trace_series: int = 20,
                 system_stats: bool = False, init_timeout_s: float = 60.0, finish_timeout_s: float = 120.0,
                 offline_fallback: bool = True) -> None:
        self.project, self.entity, self.group, self.name = project, entity, group, name
        self.job_type, self.mode, self.dir, self.tags, self.notes = job_type, mode, dir, list(tags), notes
        self.log_images, self.max_image_pairs = log_images, max_image_pairs
        self.max_table_images, self.max_trace_series = max_table_images, max_trace_series
        self.system_stats, self.offline_fallback = system_stats, offline_fallback
        self.init_timeout_s, self.finish_timeout_s = init_timeout_s, finish_timeout_s
        self.run_dir: Path | None = None
        self.offline_run_dir: Path | None = None  # offline-run-* folder, once an offline run finished
        self._run: Any = None
        self._wandb: Any = None
        self._warned: set[str] = set()
        self._rows: list[dict[str, Any]] = []
        self._trace: list[dict[str, Any]] = []
        self._pairs: list[tuple[str, Path, Path]] = []
        self._num_prompts = 0

    @property
    def active(self) -> bool:
        return self._run is not None

    # ------------------------------------------------------------------ run lifecycle
    @_never_raise
    def start(self, config: Mapping[str, Any], run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        if self.mode == "disabled":
            return
        if self.mode not in MODES:
            log.warning("logger.mode=%s is not one of %s; W&B logging is off", self.mode, "|".join(MODES))
            return
        import wandb  # imported here: logger=none and disabled runs never pay for it

        self._wandb = wandb
        wandb_dir = Path(self.dir) if self.dir else self.run_dir
        wandb_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._run = self._init(wandb, config, wandb_dir, self.mode)
        except Exception as error:  # noqa: BLE001
            if self.mode != "online" or not self.offline_fallback:
                raise
            log.warning("W&B online run could not start (%s: %s); logging offline to %s/wandb instead",
                        type(error).__name__, str(error).splitlines()[0] if str(error) else "", wandb_dir)
            self._run = self._init(wandb, config, wandb_dir, "offline")

    def _init(self, wandb: Any, config: Mapping[str, Any], wandb_dir: Path, mode: str) -> Any:
        git = {"git_root": str(REPO_ROOT)} if (REPO_ROOT / ".git").exists() else {"disable_git": True}
        settings = wandb.Settings(console="off", quiet=True, init_timeout=self.init_timeout_s,
                                  finish_timeout=self.finish_timeout_s, x_disable_stats=not self.system_stats,
                                  **git)
        resume: dict[str, Any] = {}
        if mode == "online":  # a requeued job continues its W&B run instead of starting a second one
            digest = hashlib.sha1(f"{self.project}:{self.run_dir.resolve()}".encode()).hexdigest()[:16]
            resume = {"id": digest, "resume": "allow"}
        name = self.name or (self._job_name() if self.job_type != "summary" else None)
        return wandb.init(project=self.project, entity=self.entity,
                          group=self.group or sweep_group(self.run_dir), name=name,
                          job_type=self.job_type, tags=self.tags, notes=self.notes, config=_jsonable(config),
                          dir=str(wandb_dir), mode=mode, settings=settings, reinit="create_new", **resume)

    def _job_name(self) -> str | None:
        """The swept settings as the run's name; an unreadable sweep file only costs the name."""
        try:
            return sweep_job_name(self.run_dir)
        except Exception as error:  # noqa: BLE001 - a name is not worth losing the run over
            log.warning("W&B: no run name from the sweep's files (%s: %s)", type(error).__name__, error)
            return None

    @_never_raise
    def finish(self) -> None:
        if self._run is None:
            return
        run, self._run = self._run, None
        try:
            self._log_job_tables(run)
        finally:
            offline = run.settings.mode == "offline" or getattr(run, "offline", False)
            run_files = Path(run.dir)
            run.finish()  # bounded by finish_timeout_s
            if offline:
                self.offline_run_dir = run_files.parent
                log.info("W&B offline run written to %s (upload: wandb sync %s)",
                         self.offline_run_dir, self.offline_run_dir)

    def __enter__(self) -> "WandbLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    # ------------------------------------------------------------------ one job
    @_never_raise
    def log_prompt(self, rows: Sequence[Mapping[str, Any]], trace: Sequence[Mapping[str, Any]],
                   image_pairs: Sequence[ImagePair]) -> None:
        if self._run is None:
            return
        rows, trace = [dict(r) for r in rows], [dict(t) for t in trace]
        self._rows.extend(rows)
        self._trace.extend(trace)
        metrics: dict[str, Any] = {"prompt_index": self._num_prompts}
        first = rows[0] if rows else trace[0] if trace else {}
        if _finite(first.get("prompt_id")) is not None:
            metrics["prompt_id"] = int(first["prompt_id"])
        for row in rows:
            variant = row.get("variant", "all")
            for key, value in row.items():
                number = None if key in ID_COLUMNS else _finite(value)
                if number is not None:
                    metrics[f"{variant}/{key}"] = number
        stabilities = [s for s in (_finite(t.get("stability")) for t in trace) if s is not None]
        if stabilities:
            metrics["trace/initial_stability"] = stabilities[0]
            metrics["trace/final_stability"] = stabilities[-1]
            metrics["trace/best_stability"] = max(stabilities)
        images = self._pair_images(image_pairs)
        if images:
            metrics["image_pairs"] = images
        self._run.log(metrics)
        self._num_prompts += 1

    def _resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() or self.run_dir is None else self.run_dir / path

    def _pair_images(self, image_pairs: Sequence[ImagePair]) -> list[Any]:
        images: list[Any] = []
        if not self.log_images:
            return images
        for caption, path_a, path_b in image_pairs:
            if len(self._pairs) >= self.max_image_pairs:
                break
            path_a, path_b = self._resolve(path_a), self._resolve(path_b)
            if not (path_a.is_file() and path_b.is_file()):
                log.warning("W&B: image pair %r skipped, missing %s", caption,
                            path_a if not path_a.is_file() else path_b)
                continue
            images += [self._wandb.Image(str(path_a), caption=f"{caption} | A: {path_a.stem}"),
                       self._wandb.Image(str(path_b), caption=f"{caption} | B: {path_b.stem}")]
            self._pairs.append((caption, path_a, path_b))
        return images

    def _log_job_tables(self, run: Any) -> None:
        wandb, data = self._wandb, {}
        if self._rows:
            data["results"] = self._results_table()
        if self._trace:
            trace = pd.DataFrame(self._trace)
            data["optimization_trace"] = wandb.Table(dataframe=trace)
            if {"prompt_id", "step", "stability"} <= set(trace.columns):
                prompts = list(dict.fromkeys(trace["prompt_id"]))[: self.max_trace_series]
                parts = [trace[trace["prompt_id"] == p] for p in prompts]
                data["stability_trace"] = wandb.plot.line_series(
                    xs=[part["step"].tolist() for part in parts],
                    ys=[part["stability"].astype(float).tolist() for part in parts],
                    keys=[f"prompt {p}" for p in prompts], title="Stability during optimization", xname="step")
        if self._pairs:
            data["image_pair_table"] = wandb.Table(
                columns=["pair", "A", "B"],
                data=[[caption, wandb.Image(str(a)), wandb.Image(str(b))] for caption, a, b in self._pairs])
        if data:
            run.log(data)
        run.summary["prompts_logged"] = self._num_prompts
        for key, value in self._means().items():  # a job's summary holds its means, not its last prompt's values
            run.summary[key] = value

    def _means(self) -> dict[str, float]:
        """`<variant>/<column>`: the mean over this job's prompts of each measured results column, and the mean of
        each `trace/...` value."""
        sums: dict[str, list[float]] = {}
        for row in self._rows:
            for key, value in row.items():
                number = None if key in ID_COLUMNS else _finite(value)
                if number is not None:
                    sums.setdefault(f"{row.get('variant', 'all')}/{key}", []).append(number)
        per_prompt: dict[Any, list[float]] = {}  # one pass over the trace (it holds every step of every prompt)
        for step in self._trace:
            values, stability = per_prompt.setdefault(step.get("prompt_id"), []), _finite(step.get("stability"))
            if stability is not None:
                values.append(stability)
        for values in per_prompt.values():
            if values:
                for key, value in (("initial", values[0]), ("final", values[-1]), ("best", max(values))):
                    sums.setdefault(f"trace/{key}_stability", []).append(value)
        return {key: sum(values) / len(values) for key, values in sums.items()}

    def _results_table(self) -> Any:
        """results.csv rows of this job as a W&B Table, with the first images inline."""
        columns = list(dict.fromkeys(key for row in self._rows for key in row))
        with_images = self.log_images and "image" in columns
        table_columns = columns + (["preview"] if with_images else [])
        data, shown = [], 0
        for row in self._rows:
            values = [row.get(c) if isinstance(row.get(c), (int, float, str, type(None))) else str(row.get(c))
                      for c in columns]
            if with_images:
                preview = None
                if row.get("image") and shown < self.max_table_images and self._resolve(row["image"]).is_file():
                    preview, shown = self._wandb.Image(str(self._resolve(row["image"]))), shown + 1
                values.append(preview)
            data.append(values)
        return self._wandb.Table(columns=table_columns, data=data)

    # ------------------------------------------------------------------ the merge step of a sweep
    @_never_raise
    def log_summary(self, tables: Mapping[str, pd.DataFrame], winning_rate_frames: Mapping[str, pd.DataFrame],
                    figures: Mapping[str, Path] | None = None, settings: Sequence[str] = ()) -> None:
        if self._run is None:
            return
        wandb, data, settings = self._wandb, {}, list(settings)
        tables = {name: _typed(_plain(frame), settings) for name, frame in tables.items()}
        rate_frames = {name: _typed(_plain(frame), settings) for name, frame in winning_rate_frames.items()}
        for name, frame in tables.items():
            data[f"tables/{name}"] = wandb.Table(dataframe=frame)
            labels = [c for c in frame.columns if c not in settings and not pd.api.types.is_numeric_dtype(frame[c])]
            for _, row in frame.iterrows():
                label = "/".join([setting_label(row, settings)] * bool(settings) + [str(row[c]) for c in labels])
                for column in frame.columns:
                    number = None if column in labels or column in settings else _finite(row[column])
                    if number is not None:
                        self._run.summary[f"{name}/{label}/{column}"] = number
        for name, frame in rate_frames.items():
            data.update(self._winning_rate_charts(name, frame, settings))
        data.update(self._curves(tables, rate_frames, settings))
        for name, path in (figures or {}).items():
            path = self._resolve(path)
            if path.is_file():
                data[f"figures/{name}"] = wandb.Image(str(path), caption=path.name)
            else:
                log.warning("W&B: figure %s skipped, missing %s", name, path)
        if data:
            self._run.log(data)

    def _winning_rate_charts(self, name: str, frame: pd.DataFrame, settings: Sequence[str] = ()) -> dict[str, Any]:
        """One bar chart per (dataset, A vs B): the winning rate of each metric; in a sweep, one chart per
        (dataset, A vs B, metric) with one bar per setting (its interval and n in the chart's table)."""
        wandb = self._wandb
        value = next((c for c in WIN_RATE_COLUMNS if c in frame.columns), None)
        if value is None:
            log.warning("W&B: winning rates %r have no %s column; logged as a table only",
                        name, "/".join(WIN_RATE_COLUMNS))
            return {f"winning_rates/{name}/table": wandb.Table(dataframe=frame)}
        label = "metric" if "metric" in frame.columns else next(
            (c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) and c not in COMPARISON_COLUMNS
             and c not in settings), None)
        settings = [c for c in settings if c in frame.columns]
        by = [c for c in COMPARISON_COLUMNS if c in frame.columns]
        charts: dict[str, Any] = {f"winning_rates/{name}/table": wandb.Table(dataframe=frame)}
        groups = frame.groupby(by, sort=False) if by else [((), frame)]
        for keys, part in groups:
            keys = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
            title = " ".join(filter(None, [f"{keys['dataset']}:" if "dataset" in keys else "",
                                           f"{keys['a']} vs {keys['b']}" if {"a", "b"} <= keys.keys() else "",
                                           str(keys.get("comparison", ""))])) or name
            slug = "_".join(str(v) for v in keys.values()) or name
            labels = part[label].astype(str).tolist() if label else [str(i) for i in range(len(part))]
            if settings:
                charts.update(self._per_setting_bars(f"winning_rates/{name}/{slug}", title, part, labels, value,
                                                     settings))
                for setting, lab, v in zip(part[settings].to_dict("records"), labels, part[value]):
                    if _finite(v) is not None:
                        self._run.summary[f"winning_rate/{setting_label(setting, settings)}/{slug}/{lab}"] = _finite(v)
                continue
            bars = wandb.Table(columns=["metric", "winning_rate"],
                               data=[[lab, _finite(v)] for lab, v in zip(labels, part[value])])
            charts[f"winning_rates/{name}/{slug}"] = wandb.plot.bar(bars, "metric", "winning_rate",
                                                                   title=f"Winning rate, {title}")
            for lab, v in zip(labels, part[value]):
                if _finite(v) is not None:
                    self._run.summary[f"winning_rate/{slug}/{lab}"] = _finite(v)
        return charts

    def _per_setting_bars(self, key: str, title: str, part: pd.DataFrame, labels: list[str], value: str,
                          settings: Sequence[str]) -> dict[str, Any]:
        """`<key>/<metric>`: one bar per setting, its table holding the setting columns (typed), n and the interval."""
        extra = [c for c in ("n", "ci_low", "ci_high") if c in part.columns]
        charts = {}
        for metric in dict.fromkeys(labels):
            rows = part[[lab == metric for lab in labels]]
            data = [[setting_label(row, settings), *(row[c] for c in settings), _finite(row[value]),
                     *(int(row[c]) if c == "n" else _finite(row[c]) for c in extra)] for row in rows.to_dict("records")]
            table = self._wandb.Table(columns=["setting", *settings, "winning_rate", *extra], data=data)
            charts[f"{key}/{metric}"] = self._wandb.plot.bar(
                table, "setting", "winning_rate", title=f"Winning rate per setting, {title}, {metric}")
        return charts

    def _curves(self, tables: Mapping[str, pd.DataFrame], rates: Mapping[str, pd.DataFrame],
                settings: Sequence[str]) -> dict[str, Any]:
        """`curves/<key>/<metric>` per numeric setting column: each variant's mean and each comparison's winning
        rate against that key, one line per (dataset, values of the other setting columns)."""
        charts = {}
        frames = [f for f in tables.values() if "variant" in f.columns]
        for key in (c for c in settings if all(pd.api.types.is_numeric_dtype(f[c]) for f in frames if c in f)):
            others = [c for c in settings if c != key]
            series: dict[str, dict[str, dict[float, float]]] = {}
            for frame in frames:
                if key not in frame.columns:
                    continue
                for metric in (c for c in frame.columns if c not in (*settings, "dataset", "variant", "n")
                               and pd.api.types.is_numeric_dtype(frame[c])):
                    for _, row in frame.iterrows():
                        line = _line_name(row, f"{row['variant']} mean", others, frame)
                        series.setdefault(metric, {}).setdefault(line, {})[row[key]] = _finite(row[metric])
            for frame in rates.values():
                if key not in frame.columns or not {"a", "b", "metric", "win_rate"} <= set(frame.columns):
                    continue
                for _, row in frame.iterrows():
                    line = _line_name(row, f"{row['a']} beats {row['b']}", others, frame)
                    series.setdefault(row["metric"], {}).setdefault(line, {})[row[key]] = _finite(row["win_rate"])
            for metric, lines in series.items():
                lines = {n: points for n, points in lines.items() if len(points) > 1}
                if lines:
                    charts[f"curves/{key}/{metric}"] = self._wandb.plot.line_series(
                        xs=[sorted(points) for points in lines.values()],
                        ys=[[points[x] for x in sorted(points)] for points in lines.values()],
                        keys=list(lines), title=f"{metric} and winning rate vs {key}", xname=key)
        return charts


def _line_name(row: pd.Series, what: str, others: Sequence[str], frame: pd.DataFrame) -> str:
    """A curve's name: what it plots, with the dataset when the frame has several and the other settings' values."""
    parts = [str(row["dataset"])] if "dataset" in frame.columns and frame["dataset"].nunique() > 1 else []
    parts += [what] + ([f"({setting_label(row, others)})"] if others else [])
    return " ".join(parts)


def _typed(frame: pd.DataFrame, settings: Sequence[str]) -> pd.DataFrame:
    """Setting columns as numbers where every value is one (W&B then sorts `5` before `10`)."""
    from noise_exp.report.sweep import typed

    frame = frame.copy()
    for column in (c for c in settings if c in frame.columns):
        values = [typed(v) for v in frame[column]]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            frame[column] = values
    return frame


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame with its index as columns (unless it is a plain row counter) and string column names."""
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame
