"""EDM Euler sampling and inversion as pure tensor math (paper appendix C.1, eqs. 4-6).

Notation of the paper: a denoising step goes from x_{t+1} at the higher noise level sigma_{t+1}
(`sigma_high`) to x_t at sigma_t (`sigma_low`); the inversion step goes back. The coefficients are
always evaluated at sigma_{t+1}. The scheduler (diffusers' EulerDiscreteScheduler with Karras sigmas)
places the noise levels; these functions only combine a sample, a network output and two sigmas.
No model is called here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import EulerDiscreteScheduler

# SV3D's denoiser as diffusers' Euler scheduler: v-prediction, continuous c_noise timesteps, Karras sigmas
# (rho 7) between sigma_min and sigma_max, a final sigma of 0, and init_noise_sigma = sqrt(sigma_max^2 + 1).
SV3D_SCHEDULER_CONFIG: dict[str, Any] = dict(
    prediction_type="v_prediction", timestep_type="continuous", use_karras_sigmas=True, sigma_min=0.002,
    sigma_max=700.0, timestep_spacing="leading", final_sigmas_type="zero", interpolation_type="linear",
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


@dataclass(frozen=True)
class EDMScalings:
    """The preconditioning of one noise level: D(x) = c_skip x + c_out F(c_in x; c_noise)."""

    c_skip: float
    c_out: float
    c_in: float
    c_noise: float


@dataclass(frozen=True)
class EDMSchedule:
    """The N+1 noise levels of an N-step Euler sampler, descending, ending at 0.

    Step i goes from `sigmas[i]` (sigma_{t+1}) to `sigmas[i + 1]` (sigma_t); inversion walks the same
    pairs backwards, so both directions use exactly the same levels.
    """

    sigmas: tuple[float, ...]
    init_noise_sigma: float

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    def pair(self, i: int) -> tuple[float, float]:
        """(sigma_{t+1}, sigma_t) of step i."""
        return self.sigmas[i], self.sigmas[i + 1]


def edm_schedule(num_steps: int, scheduler_config: dict[str, Any] | None = None) -> EDMSchedule:
    """Let diffusers' EulerDiscreteScheduler place `num_steps` Karras sigmas and read them (float64)."""
    scheduler = EulerDiscreteScheduler.from_config({**SV3D_SCHEDULER_CONFIG, **(scheduler_config or {})})
    scheduler.set_timesteps(num_steps)
    sigmas = tuple(float(s) for s in scheduler.sigmas.to(torch.float64))
    return EDMSchedule(sigmas=sigmas, init_noise_sigma=float(scheduler.init_noise_sigma))


def v_scalings(sigma: float) -> EDMScalings:
    """EDM v-scaling with EDM c_noise (sgm's VScalingWithEDMcNoise), the coefficients of eqs. (5)-(6)."""
    if sigma <= 0:
        raise ValueError(f"the EDM scalings need sigma > 0 (c_noise = ln(sigma)/4), got {sigma}")
    denominator = sigma**2 + 1.0
    return EDMScalings(c_skip=1.0 / denominator, c_out=-sigma / math.sqrt(denominator),
                       c_in=1.0 / math.sqrt(denominator), c_noise=0.25 * math.log(sigma))


def edm_denoised(sample: torch.Tensor, model_output: torch.Tensor, sigma: float) -> torch.Tensor:
    """Eq. (5)'s bracket: the denoised estimate D = c_skip x + c_out u_theta(c_in x; c_noise) at sigma."""
    scalings = v_scalings(sigma)
    return scalings.c_skip * sample + scalings.c_out * model_output


def edm_euler_step(sample: torch.Tensor, model_output: torch.Tensor, sigma_high: float, sigma_low: float) -> torch.Tensor:
    """Eqs. (4)-(5): x_t = x_{t+1} + (sigma_t - sigma_{t+1}) / sigma_{t+1} * (x_{t+1} - D(x_{t+1}))."""
    mu = sample - edm_denoised(sample, model_output, sigma_high)
    return sample + (sigma_low - sigma_high) / sigma_high * mu


def edm_euler_inversion_step(sample: torch.Tensor, model_output: torch.Tensor, sigma_low: float,
                             sigma_high: float) -> torch.Tensor:
    """Eq. (6): x_{t+1} from x_t, with u_theta evaluated at x_t standing in for u_theta at x_{t+1}."""
    scalings = v_scalings(sigma_high)
    step = sigma_low - sigma_high
    return (sigma_high * sample + step * scalings.c_out * model_output) / (step * (1.0 - scalings.c_skip) + sigma_high)


def triangle_guidance_scales(num_frames: int, max_scale: float, min_scale: float = 1.0) -> torch.Tensor:
    """SV3D's per-frame CFG scale (sgm TrianglePredictionGuider, period 1): min at both ends, max mid-orbit."""
    if num_frames == 1:
        return torch.tensor([float(max_scale)], dtype=torch.float64)
    position = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)
    triangle = 2.0 * (position - torch.floor(position + 0.5)).abs()
    return min_scale + (max_scale - min_scale) * triangle
