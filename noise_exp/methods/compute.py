"""Compute accounting: network forward passes as they happen, and the peak memory of a piece of work."""
from __future__ import annotations

import resource
import sys
from typing import Any

import torch


class NetworkPasses:
    """Counts the samples that go through a network, CFG passes included: a call on a batch of 2B latents (the
    conditional and unconditional halves) counts 2B. Divided by the B noises of a batch, it is the NFE per sample."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.count = 0
        self._handle = network.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = next((value for value in (*args, *kwargs.values()) if isinstance(value, torch.Tensor)), None)
        self.count += int(sample.shape[0]) if sample is not None and sample.dim() else 1

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "NetworkPasses":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PeakMemory:
    """Peak memory in MiB while the block runs: CUDA's max allocated on a CUDA device (reset on entry), else the
    process's peak resident set size so far (the OS keeps no per-block peak)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.mib = float("nan")

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
            self.mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
