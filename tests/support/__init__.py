"""Fixtures shared by the tests: tiny scorer checkpoints (scorers) and synthetic run folders (runs)."""
