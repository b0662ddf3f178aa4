"""`bank=<folder>`: the runner's candidate bank (docs/candidate_bank.md) read and filled from a user's pipeline.

A candidate's scope is what its numbers depend on: the weights and every sampling setting. The runner names the
weights by their folder's content hash; a pipeline object may hold weights no folder has (a fine-tune in memory),
so here they are named by their values: per parameter its name, shape, dtype and a strided sample of at most 1,024
values (every weight of a fine-tune moves, so a changed model changes the sample).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from noise_exp.candidates.keys import BankScope
from noise_exp.candidates.session import BankSession
from noise_exp.candidates.storage import CandidateBank
from noise_exp.models.base import NoiseModel

SAMPLED_VALUES = 1024


def parameters_identity(pipe: Any) -> str:
    """`params:<sha256>` of every torch module of the pipeline (name, shape, dtype, sampled values)."""
    digest = hashlib.sha256()
    for component, module in sorted(pipe.components.items()):
        if not isinstance(module, torch.nn.Module):
            continue
        for name, parameter in module.state_dict().items():
            flat = parameter.detach().flatten()
            sample = flat[:: max(1, flat.numel() // SAMPLED_VALUES)].to("cpu", torch.float64)
            digest.update(f"{component}.{name}:{tuple(parameter.shape)}:{parameter.dtype}:".encode())
            digest.update(sample.numpy().tobytes())
    return "params:" + digest.hexdigest()[:16]


def pipeline_scope(model: NoiseModel) -> BankScope:
    """The scope of the adapter's candidates: the pipeline class, its weights and the adapter's sampling settings."""
    settings = {key: value for key, value in model.describe().items() if key not in ("name", "device")}
    settings.update(weights=parameters_identity(model.pipe), pipeline=type(model.pipe).__name__)
    return BankScope(settings)


def open_bank(folder: str | Path, model: NoiseModel) -> BankSession:
    """A session on the bank folder (made if missing) under the pipeline's scope; images are not kept."""
    bank = CandidateBank(Path(folder).expanduser(), create=True)
    return BankSession(bank, pipeline_scope(model), {"pipeline": type(model.pipe).__name__}, run="noise_exp.api",
                       keep_images=False)
