"""Questions asked of the candidate bank (docs/candidate_bank.md); the store itself, which runs write and reuse, is
noise_exp.candidates.

queries.py (selection rules over stored candidates), select_run.py (a query's answer as a run folder), stats.py and
correlation.py (stability-quality correlations), seed_table.py (the prompts x seeds table and the seed prior
measured from it), decompose.py (the seed's share of var(s)); the command line is `python -m noise_exp.bank`.
"""
