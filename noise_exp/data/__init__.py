"""Prompt sets (the `dataset` config group). The data files live in the top-level `datasets/` folder."""
from noise_exp.data.prompts import Prompt, PromptSet

__all__ = ["Prompt", "PromptSet"]
