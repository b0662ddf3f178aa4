"""DDIM sampling and inversion as pure tensor math (paper eqs. 1 and 2, and a fixed-point refinement of eq. 2).

The scheduler does the timestep math (leading / trailing / linspace spacing); these functions only
combine a sample, a predicted noise and two cumulative alphas. No model is called here: the fixed-point step takes
the predicted noise as a function of the point it is evaluated at, which the model adapter supplies.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from diffusers import DDIMScheduler


@dataclass(frozen=True)
class DDIMSchedule:
    """The T denoising timesteps (descending) and the cumulative alpha of each, plus the end point.

    Step i goes from `timesteps[i]` to `timesteps[i + 1]`; the last step goes to the clean end whose
    cumulative alpha is `final_alpha_cumprod`. Inversion walks the same pairs backwards, so denoising
    and inversion use exactly the same noise levels for any spacing (no gaps with 'trailing').
    """

    timesteps: torch.Tensor
    alphas_cumprod: torch.Tensor
    final_alpha_cumprod: float
    prediction_type: str

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def alpha_pair(self, i: int) -> tuple[float, float]:
        """(alpha_bar at step i, alpha_bar of the level step i lands on)."""
        prev = self.alphas_cumprod[i + 1] if i + 1 < self.num_steps else self.final_alpha_cumprod
        return float(self.alphas_cumprod[i]), float(prev)

    def truncated(self, steps: int) -> "DDIMSchedule":
        """The first `steps` steps of this schedule, ending at the noise level step `steps - 1` lands on."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"a truncated schedule keeps 1..{self.num_steps} steps, not {steps}")
        return replace(self, timesteps=self.timesteps[:steps], alphas_cumprod=self.alphas_cumprod[:steps],
                       final_alpha_cumprod=self.alpha_pair(steps - 1)[1])


INVERSIONS = ("ddim", "fixed_point")  # model.inversion choices
NoiseAt = Callable[[torch.Tensor, float], torch.Tensor]  # (point x, its alpha_bar) -> u_theta(x, t, c)


def ddim_schedule(scheduler: DDIMScheduler, num_steps: int) -> DDIMSchedule:
    """Let the diffusers scheduler place `num_steps` timesteps and read their noise levels."""
    scheduler.set_timesteps(num_steps)
    timesteps = scheduler.timesteps.to(torch.long).cpu()
    alphas = scheduler.alphas_cumprod.to(torch.float64)[timesteps]
    return DDIMSchedule(
        timesteps=timesteps,
        alphas_cumprod=alphas,
        final_alpha_cumprod=float(scheduler.final_alpha_cumprod),
        prediction_type=scheduler.config.prediction_type,
    )


def predicted_noise(model_output: torch.Tensor, sample: torch.Tensor, alpha_bar: float, prediction_type: str) -> torch.Tensor:
    """Turn the UNet output into the predicted noise u_theta for a sample at noise level alpha_bar."""
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "v_prediction":
        return alpha_bar**0.5 * model_output + (1 - alpha_bar) ** 0.5 * sample
    if prediction_type == "sample":
        return (sample - alpha_bar**0.5 * model_output) / (1 - alpha_bar) ** 0.5
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")


def ddim_denoise_step(sample: torch.Tensor, noise_pred: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float) -> torch.Tensor:
    """Eq. (1) as deterministic DDIM (eta = 0): x_{t-1} from x_t and u_theta(x_t, t, c)."""
    pred_x0 = (sample - (1 - alpha_bar_t) ** 0.5 * noise_pred) / alpha_bar_t**0.5
    return alpha_bar_prev**0.5 * pred_x0 + (1 - alpha_bar_prev) ** 0.5 * noise_pred


def ddim_inversion_step(sample: torch.Tensor, noise_pred: torch.Tensor, alpha_bar_prev: float, alpha_bar_t: float) -> torch.Tensor:
    """Eq. (2): x_t from x_{t-1}, with u_theta(x_{t-1}, t, c) standing in for u_theta(x_t, t, c)."""
    coeff = alpha_bar_t**0.5 * ((1 - alpha_bar_t) / alpha_bar_t) ** 0.5 - alpha_bar_t**0.5 * ((1 - alpha_bar_prev) / alpha_bar_prev) ** 0.5
    return (alpha_bar_t / alpha_bar_prev) ** 0.5 * sample + coeff * noise_pred


def fixed_point_inversion_step(sample: torch.Tensor, noise_at: NoiseAt, alpha_bar_prev: float, alpha_bar_t: float,
                               iterations: int) -> torch.Tensor:
    """x_t^(k+1) = sqrt(a_t / a_prev) x_{t-1} + c u_theta(x_t^(k), t, c), x_t^(0) = x_{t-1}; k = 1 is eq. (2)."""
    if iterations < 1:
        raise ValueError(f"fixed-point inversion needs at least 1 iteration, got {iterations}")
    estimate, alpha_bar = sample, alpha_bar_prev
    for _ in range(iterations):
        estimate = ddim_inversion_step(sample, noise_at(estimate, alpha_bar), alpha_bar_prev, alpha_bar_t)
        alpha_bar = alpha_bar_t
    return estimate
