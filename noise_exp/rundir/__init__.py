"""The run folder: per-prompt records and the tables rebuilt from them (store), results.csv (results), the
method's declaration (declaration), which way each scored column is better (metrics), the run's fingerprint
(fingerprint), its lock (lock), scoring its images (scoring) and the human-eval votes of a served folder (votes).
Import from the modules; this package re-exports nothing."""
