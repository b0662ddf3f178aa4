"""The report of a run folder or a merged sweep: the paper's Tables 1-2 (means), Figures 3/5 (winning rates)
and 4/6 (image pairs). Entry points: `write_report(run_dirs, out_dir)` and `python -m noise_exp.report`."""
from noise_exp.report.report import ReportResult, write_report
from noise_exp.report.tables import COMPARISONS, load_runs, mean_table, winning_rates, wilson_interval

__all__ = ["COMPARISONS", "ReportResult", "load_runs", "mean_table", "wilson_interval", "winning_rates",
           "write_report"]
