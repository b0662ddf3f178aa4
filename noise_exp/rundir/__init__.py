"""The run folder: per-prompt records and the tables rebuilt from them (store), results.csv (results), the
method's declaration (declaration), the run's fingerprint (fingerprint), its lock (lock) and scoring its images
(scoring). Import from the modules; this package re-exports nothing."""
