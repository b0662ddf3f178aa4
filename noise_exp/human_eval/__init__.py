"""Human preference evaluation (paper Figure 10, appendix A.3): a pairwise web page, votes in SQLite, winning rates.

Entry point: `python -m noise_exp.human_eval serve|export|analyze <run or sweep folder>`; the report includes
`human_report_markdown(folder)`. See docs/human_eval.md.
"""
from noise_exp.human_eval.analysis import (
    ComparisonRate,
    HumanEvalSummary,
    human_report_markdown,
    human_winning_rates,
    write_human_winning_rates_csv,
)

__all__ = [
    "ComparisonRate",
    "HumanEvalSummary",
    "human_report_markdown",
    "human_winning_rates",
    "write_human_winning_rates_csv",
]
