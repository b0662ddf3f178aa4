"""Human preference evaluation (paper Figure 10, appendix A.3): the pairwise web page and the shapes label page.

Entry point: `python -m noise_exp.human_eval serve|export|analyze|audit <run or sweep folder>`. The votes
store is noise_exp.rundir.votes; winning rates and agreement from it are noise_exp.report.human (the report
includes `human_report_markdown(folder)`). See docs/human_eval.md.
"""
