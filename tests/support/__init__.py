"""Helpers shared by several test folders: tiny scorer checkpoints (scorers), synthetic run folders (runs), synthetic
candidates and banked digits runs (bank)."""
