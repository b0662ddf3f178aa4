"""The report of a run folder or a merged sweep: the paper's Tables 1-2 (means), Figures 3/5 (winning rates),
4/6 (image pairs) and 8 (curves against a swept key, `noise_exp.report.curves`), one row per setting of a sweep.
Entry points: `write_report(run_dirs, out_dir)` and `python -m noise_exp.report`."""
from noise_exp.report.report import ReportResult, write_report
from noise_exp.report.sweep import SweepSettings, sweep_settings
from noise_exp.report.tables import (Sweep, load_runs, load_sweep, mean_table, wilson_interval,
                                     winning_rates)

__all__ = ["ReportResult", "Sweep", "SweepSettings", "load_runs", "load_sweep", "mean_table",
           "sweep_settings", "wilson_interval", "winning_rates", "write_report"]
