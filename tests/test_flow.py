"""The flow-matching Euler step, its inversion and the shifted sigma schedules against their closed forms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from noise_exp.flow import (dynamic_shift_mu, dynamically_shifted_sigma, flow_euler_inversion_step, flow_euler_step,
                            flow_schedule, shifted_sigma)

PAIRS = [(1.0, 0.75), (0.857692, 0.602151), (0.008929, 0.0), (0.35, 0.349)]


def test_inversion_undoes_one_euler_step_exactly_for_a_fixed_velocity():
    torch.manual_seed(0)
    sample, velocity = torch.randn(2, 16, 8, 8, dtype=torch.float64), torch.randn(2, 16, 8, 8, dtype=torch.float64)
    for sigma, sigma_next in PAIRS:
        stepped = flow_euler_step(sample, velocity, sigma, sigma_next)
        assert torch.equal(stepped, sample + (sigma_next - sigma) * velocity)
        back = flow_euler_inversion_step(stepped, velocity, sigma_next, sigma)
        assert (back - sample).abs().max() <= 1e-15


def test_euler_lands_on_the_straight_path_exactly_and_inversion_walks_back_to_the_noise():
    """On x_sigma = (1 - sigma) x0 + sigma eps the true velocity eps - x0 is constant: Euler is exact, both ways."""
    torch.manual_seed(1)
    x0, eps = torch.randn(1, 4, 6, 6, dtype=torch.float64), torch.randn(1, 4, 6, 6, dtype=torch.float64)
    sigmas = [1.0, 0.83, 0.61, 0.35, 0.0]
    sample = eps
    for sigma, sigma_next in zip(sigmas, sigmas[1:]):
        sample = flow_euler_step(sample, eps - x0, sigma, sigma_next)
        assert torch.allclose(sample, (1 - sigma_next) * x0 + sigma_next * eps, atol=1e-14)
    for sigma, sigma_next in reversed(list(zip(sigmas, sigmas[1:]))):
        sample = flow_euler_inversion_step(sample, eps - x0, sigma_next, sigma)
    assert torch.allclose(sample, eps, atol=1e-14)


@pytest.mark.parametrize("num_steps,shift", [(4, 3.0), (28, 3.0), (4, 1.0)])
def test_static_shift_schedule_is_the_scheduler_s_and_the_closed_form(num_steps, shift):
    schedule = flow_schedule({"shift": shift}, num_steps)
    assert schedule.num_steps == num_steps and schedule.sigmas[-1] == 0.0 and schedule.mu is None
    assert torch.allclose(schedule.timesteps.double(), 1000 * torch.tensor(schedule.sigmas[:-1], dtype=torch.float64),
                          atol=1e-4)
    # diffusers spaces t uniformly from sigma_max to sigma_min, both already shifted, then shifts again
    sigma_min = float(shifted_sigma(torch.tensor(1 / 1000, dtype=torch.float64), shift))
    unshifted = torch.linspace(1.0, sigma_min, num_steps, dtype=torch.float64)
    assert torch.allclose(torch.tensor(schedule.sigmas[:-1], dtype=torch.float64), shifted_sigma(unshifted, shift),
                          atol=1e-6)


@pytest.mark.parametrize("num_steps,image_seq_len", [(4, 64), (50, 4096), (28, 1024)])
def test_dynamic_shift_schedule_follows_the_closed_form(num_steps, image_seq_len):
    config = {"shift": 3.0, "use_dynamic_shifting": True}
    mu = dynamic_shift_mu(image_seq_len, 256, 4096, 0.5, 1.15)
    base = np.linspace(1.0, 1.0 / num_steps, num_steps)
    schedule = flow_schedule(config, num_steps, base_sigmas=base, mu=mu)
    assert schedule.mu == mu and schedule.sigmas[-1] == 0.0
    expected = dynamically_shifted_sigma(torch.tensor(base, dtype=torch.float64), mu)
    assert torch.allclose(torch.tensor(schedule.sigmas[:-1], dtype=torch.float64), expected, atol=1e-6)


@pytest.mark.parametrize("image_seq_len", [64, 256, 1024, 4096, 16384])
def test_dynamic_shift_mu_is_the_pipelines_exactly(image_seq_len):
    assert dynamic_shift_mu(image_seq_len, 256, 4096, 0.5, 1.15) == calculate_shift(image_seq_len, 256, 4096, 0.5, 1.15)
    assert dynamic_shift_mu(256, 256, 4096, 0.5, 1.15) == pytest.approx(0.5)
    assert dynamic_shift_mu(4096, 256, 4096, 0.5, 1.15) == pytest.approx(1.15)
