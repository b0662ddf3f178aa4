"""The candidate bank: every candidate of a noise selection stored once, keyed by model, sampler, prompt and seed, so
that later runs reuse it and any selection rule is a query (docs/candidate_bank.md).

storage.py (append-only Parquet files and the index read from them), keys.py (the key), session.py (a run's view),
queries.py (selection rules over stored candidates), stats.py (stability-quality correlations), seed_prior.py
(the prompts x seeds table and the seed prior), decompose.py (the seed's share of var(s)); the command line is
`python -m noise_exp.bank`.
"""
from noise_exp.bank.keys import BankScope, candidate_key
from noise_exp.bank.storage import BankContents, BankWriter, CandidateBank, StoredCandidate

__all__ = ["BankContents", "BankScope", "BankWriter", "CandidateBank", "StoredCandidate", "candidate_key"]
