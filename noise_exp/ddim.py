"""DDIM sampling and inversion as pure tensor math (paper eqs. 1 and 2).

The scheduler does the timestep math (leading / trailing / linspace spacing); these functions only
combine a sample, a predicted noise and two cumulative alphas. No model is called here.
"""
from __future__ import annotations

from dataclasses import dataclass

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
