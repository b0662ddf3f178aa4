"""Flow-matching (rectified flow) Euler sampling and inversion as pure tensor math.

A flow-matching model (SD3, FLUX.1) predicts the velocity v = eps - x0 of the straight path
x_sigma = (1 - sigma) x0 + sigma eps, sigma from 1 (noise) to 0 (clean). Its deterministic sampler is the Euler
solve of dx/dsigma = v; the inversion walks the same sigma pairs backwards with the velocity taken at the point
it starts from, as DDIM inversion (paper eq. 2) takes u_theta at x_{t-1}. Diffusers'
FlowMatchEulerDiscreteScheduler places the sigmas (static shift, or resolution-dependent dynamic shift); these
functions only combine a sample, a velocity and two sigmas. No model is called here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from diffusers import FlowMatchEulerDiscreteScheduler


@dataclass(frozen=True)
class FlowSchedule:
    """The N+1 sigmas of an N-step Euler sampler (descending, ending at 0) and the N timesteps the network gets.

    Step i goes from `sigmas[i]` to `sigmas[i + 1]` with the network evaluated at `timesteps[i]`; inversion
    walks the same pairs backwards and gives the network the same timestep, so both directions use exactly the
    levels the diffusers pipeline uses. `timesteps` are the scheduler's own float32 values (sigma * 1000).
    """

    sigmas: tuple[float, ...]
    timesteps: torch.Tensor
    shift: float
    mu: float | None = None  # the dynamic shift's exponent; None for a static shift

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    def pair(self, i: int) -> tuple[float, float]:
        """(sigma_i, sigma_{i+1}) of step i: the level it starts from and the lower level it lands on."""
        return self.sigmas[i], self.sigmas[i + 1]


def flow_schedule(scheduler_config: Mapping[str, Any], num_steps: int, base_sigmas: Sequence[float] | None = None,
                  mu: float | None = None) -> FlowSchedule:
    """Let diffusers' FlowMatchEulerDiscreteScheduler place the sigmas, exactly as a pipeline's `set_timesteps` call.

    `base_sigmas` (FLUX passes linspace(1, 1/N, N)) replace the scheduler's own spacing before the shift; `mu`
    is required by schedulers with `use_dynamic_shifting`.
    """
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(scheduler_config))
    if base_sigmas is None:
        scheduler.set_timesteps(num_steps, mu=mu)
    else:
        scheduler.set_timesteps(sigmas=list(base_sigmas), mu=mu)
    return FlowSchedule(sigmas=tuple(float(s) for s in scheduler.sigmas), timesteps=scheduler.timesteps.clone(),
                        shift=float(scheduler.shift), mu=None if mu is None else float(mu))


def dynamic_shift_mu(image_seq_len: int, base_seq_len: int, max_seq_len: int, base_shift: float,
                     max_shift: float) -> float:
    """mu = m L + b, the line through (L_base, base_shift) and (L_max, max_shift) at L image tokens (SD3 paper 5.3.2)."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    intercept = base_shift - slope * base_seq_len
    return image_seq_len * slope + intercept


def shifted_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """Static shift: sigma' = s sigma / (1 + (s - 1) sigma)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def dynamically_shifted_sigma(sigma: torch.Tensor, mu: float) -> torch.Tensor:
    """Dynamic (exponential) shift: sigma' = e^mu / (e^mu + (1 / sigma - 1))."""
    return math.exp(mu) / (math.exp(mu) + (1 / sigma - 1))


def flow_euler_step(sample: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """Euler step of dx/dsigma = v: x_{sigma_next} = x_sigma + (sigma_next - sigma) v_theta(x_sigma, sigma, c)."""
    return sample + (sigma_next - sigma) * velocity


def flow_euler_inversion_step(sample: torch.Tensor, velocity: torch.Tensor, sigma_next: float, sigma: float) -> torch.Tensor:
    """Inversion: x_sigma = x_{sigma_next} - (sigma_next - sigma) v, with v_theta(x_{sigma_next}, sigma, c) standing in for v_theta(x_sigma, sigma, c)."""
    return sample - (sigma_next - sigma) * velocity
