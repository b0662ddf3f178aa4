"""Experiment trackers behind one small interface (`RunLogger`): W&B, or nothing.

Chosen by the `logger` config group (`logger=wandb`, `logger=none`) and built with
`hydra.utils.instantiate(cfg.logger)`. A tracker never blocks or fails a run: its errors become
warnings.
"""
from noise_exp.logging.base import NullLogger, RunLogger
from noise_exp.logging.wandb_logger import WandbLogger

__all__ = ["NullLogger", "RunLogger", "WandbLogger"]
