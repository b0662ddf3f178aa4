"""Synthetic candidates and small banked runs of the digits model (bank, candidates, speed, fault-matrix tests)."""
from __future__ import annotations

from pathlib import Path

from noise_exp.candidates import BankScope, StoredCandidate

SCOPE = BankScope({"weights": "sha256:0123456789abcdef", "dtype": "torch.float32", "num_steps": 10,
                   "guidance_scale": 3.0, "inversion_guidance_scale": 1.0, "height": 16, "width": 16,
                   "timestep_spacing": None})
SCORERS = "evaluator=[digit_classifier,digit_realism]"


def synthetic(prompt: str, seeds, scores: dict[str, float] | None = None) -> list[StoredCandidate]:
    """Candidates whose numbers are functions of the seed, so a read-back can be checked exactly."""
    return [StoredCandidate(prompt, seed, {"cosine": seed / 1000, "pearson": seed / 2000, "neg_rmse": -seed / 100},
                            nfe=30, nfe_denoise=20, seconds=0.5, seconds_denoise=0.25,
                            scores=dict(scores or {})) for seed in seeds]


def run_digits(run_dir: Path, bank: Path | None, *overrides: str, prompts: int = 2, seeds: int = 5,
               method: str = "select") -> dict:
    """`python run.py model=small_digits dataset=digits method=select ...` in this process (T=2 for speed)."""
    from noise_exp.config import compose_config
    from noise_exp.runner import run_experiment

    selection = [f"method.num_seeds={seeds}", "method.batch_size=3"] if method == "select" else []
    cfg = compose_config(["model=small_digits", "dataset=digits", f"dataset.limit={prompts}", f"method={method}",
                          *selection, "model.num_steps=2", *([f"bank.path={bank}"] if bank else []), *overrides])
    return run_experiment(cfg, run_dir)
