"""Join the run folders of a sweep (or of shards) into one results table and one report.

`python -m noise_exp.merge multirun/table1 [--out multirun/table1/merged] [--pool]`

The swept result keys become columns of results.csv and of the report's tables: one row per distinct setting
(shards of one setting are one setting), unless `--pool` pools every run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from noise_exp.cli import ArgumentParser
from noise_exp.errors import NoiseExpError, exit_on_user_error
from noise_exp.files import writable_folder
from noise_exp.logging import RunLogger
from noise_exp.report.sweep import add_tie_tolerance_option, check_unique_prompts, read_sweep_spec, sweep_settings
from noise_exp.report.tables import RESERVED
from noise_exp.rundir.metrics import record_directions, runs_directions
from noise_exp.rundir.results import MERGED, RESULTS_FILE, find_runs, read_results, write_results


def merge_runs(folder: Path, out_dir: Path | None = None, tracker: RunLogger | None = None,
               pool: bool = False, tie_tolerance: dict[str, float] | None = None) -> Path:
    """Concatenate the runs' results (with a `run` column and the sweep's setting columns), check each
    (setting, dataset, prompt, variant) appears once unless `pool`, and write `<out>/results.csv`, the runs'
    metric directions (`<out>/metrics.json`) and the report (one row per setting, or pooled). Returns the output
    folder."""
    folder = Path(folder)
    out_dir = Path(out_dir) if out_dir else folder / MERGED
    runs = find_runs(folder)
    settings = sweep_settings(runs, RESERVED)
    frames = []
    for run in runs:
        frame = read_results(run, keep_default_na=False)
        name = str(run.relative_to(folder)) if run != folder else "."
        frame.insert(0, "run", name)
        settings.add_columns(frame, run)
        for column in ("image", "noise", "reference"):
            if column in frame:  # keep paths valid from the merged folder
                frame[column] = [str((run / p).resolve()) if p else "" for p in frame[column]]
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    if not pool:
        check_unique_prompts(merged, settings.columns)
    directions = runs_directions(runs)  # before anything is written: runs that disagree on a metric stop the merge
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(merged, out_dir)
    record_directions(out_dir, directions)
    from noise_exp.report import write_report

    report = write_report(runs, out_dir / "report", pool=pool, tie_tolerance=tie_tolerance)
    if tracker is not None:
        tracker.start({"sweep": str(folder), "runs": [str(r) for r in runs], "settings": settings.keys}, out_dir)
        try:
            tracker.log_summary({"means": report.means}, {"winning_rates": report.winning_rates},
                                figures={k: v for k, v in report.files.items() if v.suffix == ".png"},
                                settings=report.settings)
        finally:
            tracker.finish()
    return out_dir


def unfinished_jobs(folder: Path) -> list[str]:
    """Each job under `folder` that has no results.csv, with the overrides that set it apart: a job Hydra started
    (a folder with .hydra/overrides.yaml) that failed or is still running, and a job of the sweep's multirun.yaml
    that has no folder at all (never started, e.g. a SLURM array task that was not submitted)."""
    import yaml

    folder = Path(folder)
    started = {}
    for saved in sorted(folder.rglob(".hydra/overrides.yaml")):
        job = saved.parent.parent
        if MERGED not in job.relative_to(folder).parts:
            started[_normalized(yaml.safe_load(saved.read_text()) or ())] = job
    expected = _sweep_jobs(folder / "multirun.yaml") or list(started)
    jobs = list(dict.fromkeys([*expected, *started]))
    shared = set.intersection(*(set(job) for job in jobs)) if len(jobs) > 1 else set()
    unfinished = []
    for number, overrides in enumerate(jobs):
        own = " ".join(o for o in overrides if o not in shared)
        job = started.get(overrides)
        if job is None:
            unfinished.append(f"job #{number} ({own}) never started")
        elif not (job / RESULTS_FILE).is_file():
            unfinished.append(f"job {job.relative_to(folder) if job != folder else '.'} ({own}) has no {RESULTS_FILE} "
                              f"(failed or still running: see its run.log)")
    return unfinished


def _sweep_jobs(saved: Path) -> list[tuple[str, ...]] | None:
    """The jobs (override lists) Hydra's basic sweeper makes from a sweep's multirun.yaml; None if unknown."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    spec = read_sweep_spec(saved.parent)
    if spec is None or not spec.sweeper.endswith("BasicSweeper"):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(spec.params + spec.task)
        return [_normalized(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    except Exception:  # an override this Hydra cannot parse again: judge by the started jobs only
        return None


def _normalized(overrides) -> tuple[str, ...]:
    """Overrides as Hydra's sweeper writes them (`save_noise=false` -> `save_noise=False`), to compare jobs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    written = []
    for text in overrides:
        try:
            override = parser.parse_override(str(text))
            written.append(f"{override.get_key_element()}={override.get_value_element_as_str()}")
        except Exception:  # not an override Hydra can parse again: compare it as written
            written.append(str(text))
    return tuple(written)


def sweep_tracker(folder: Path) -> RunLogger | None:
    """The sweep's own logger config (from Hydra's multirun.yaml), as a 'summary' run in its jobs' group (the config's
    `name`, else the one `sweep_group` gives the jobs)."""
    saved = Path(folder) / "multirun.yaml"
    if not saved.is_file():
        return None
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.load(saved).get("logger")
    if not node or "NullLogger" in str(node.get("_target_", "")):
        return None
    from noise_exp.logging.wandb_logger import sweep_group

    return instantiate(node, job_type="summary", name="summary", group=node.get("group") or sweep_group(folder))


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m noise_exp.merge", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="sweep folder, e.g. multirun/table1")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <folder>/merged)")
    parser.add_argument("--no-tracker", action="store_true", help="don't log the summary to the sweep's W&B group")
    parser.add_argument("--pool", action="store_true",
                        help="pool all runs into one row per dataset and variant, whatever their settings")
    add_tie_tolerance_option(parser)
    parser.add_argument("--allow-missing", action="store_true",
                        help="merge the finished jobs of a sweep whose other jobs failed or never started")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise NoiseExpError(f"{args.folder} is not a folder")
    if args.out is not None:
        writable_folder(args.out, "--out")
    unfinished = unfinished_jobs(args.folder)
    if unfinished and not args.allow_missing:
        raise NoiseExpError(f"{len(unfinished)} job(s) of {args.folder} did not finish: {'; '.join(unfinished)}; "
                            f"rerun them, or merge the finished ones with --allow-missing")
    if unfinished:
        print(f"warning: merging without {len(unfinished)} job(s): {'; '.join(unfinished)}", file=sys.stderr,
              flush=True)
    out = merge_runs(args.folder, args.out, None if args.no_tracker else sweep_tracker(args.folder), pool=args.pool,
                     tie_tolerance=dict(args.tie_tolerance))
    print(f"merged: {out / RESULTS_FILE}\nreport: {out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
