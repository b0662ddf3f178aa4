"""Device and dtype choice shared by models and scorers: 'auto' means CUDA + float16 when there, CPU + float32 otherwise."""
from __future__ import annotations

import logging

import torch

from noise_exp.errors import NoiseExpError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None) means cuda when present, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise NoiseExpError(f"unknown device {device!r}; choose auto, cpu, cuda or cuda:<index>") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise NoiseExpError(f"device {device!r} requested but no CUDA device is available; use device=auto or cpu")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """'auto' means float16 on GPU (the paper's setting) and float32 on CPU, where half precision is slow and
    partly unsupported: a half dtype asked for on CPU falls back to float32 with a log line."""
    if dtype in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif dtype in DTYPES:
        resolved = DTYPES[dtype]
    else:
        raise NoiseExpError(f"unknown dtype {dtype!r}; choose auto, {', '.join(sorted(DTYPES))}")
    if device.type == "cpu" and resolved != torch.float32:
        log.info("%s on CPU: using float32", resolved)
        return torch.float32
    return resolved
