"""The candidate store: every candidate of a noise selection stored once, keyed by model, sampler, prompt and seed,
so that later runs reuse it and any selection rule is a query (docs/candidate_bank.md). It sits below the methods,
which read and write it; the queries over it are noise_exp.bank.

storage.py (append-only Parquet files and the index read from them), keys.py (the key), session.py (a run's view
and its bank.json), rules.py (the selection rules by name), seed_prior.py (the seed prior file).
"""
from noise_exp.candidates.keys import BankScope, candidate_key
from noise_exp.candidates.storage import BankContents, BankWriter, CandidateBank, StoredCandidate

__all__ = ["BankContents", "BankScope", "BankWriter", "CandidateBank", "StoredCandidate", "candidate_key"]
