"""Eqs. (4)-(6) in closed form: the inversion step undoes the Euler step when the network output is fixed."""
from __future__ import annotations

import math

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from noise_exp.edm import (SV3D_SCHEDULER_CONFIG, edm_denoised, edm_euler_inversion_step, edm_euler_step, edm_schedule,
                           triangle_guidance_scales, v_scalings)

SIGMA_PAIRS = [(700.0, 620.3278), (548.5581, 484.0267), (15.59, 2.269), (1.0, 0.5), (0.00768, 0.00405), (0.002, 0.0)]


@pytest.mark.parametrize("sigma_high,sigma_low", SIGMA_PAIRS)
def test_eq6_exactly_inverts_eq4_for_a_fixed_model_output(sigma_high, sigma_low):
    generator = torch.Generator().manual_seed(0)
    x_high = torch.randn(3, 4, 8, 8, generator=generator, dtype=torch.float64) * math.sqrt(sigma_high**2 + 1)
    u = torch.randn(3, 4, 8, 8, generator=generator, dtype=torch.float64)
    x_low = edm_euler_step(x_high, u, sigma_high, sigma_low)
    recovered = edm_euler_inversion_step(x_low, u, sigma_low, sigma_high)
    assert torch.allclose(recovered, x_high, rtol=1e-12, atol=1e-12 * float(x_high.abs().max()))
    assert (recovered - x_high).abs().max() / x_high.abs().max() < 1e-13


def test_v_scalings_are_sgm_vscaling_with_edm_c_noise():
    s = v_scalings(700.0)
    assert s.c_skip == pytest.approx(1 / (700.0**2 + 1), rel=1e-15)
    assert s.c_out == pytest.approx(-700.0 / math.sqrt(700.0**2 + 1), rel=1e-15)
    assert s.c_in == pytest.approx(1 / math.sqrt(700.0**2 + 1), rel=1e-15)
    assert s.c_noise == pytest.approx(0.25 * math.log(700.0), rel=1e-15)
    with pytest.raises(ValueError):
        v_scalings(0.0)


def test_last_step_lands_on_the_denoised_estimate():
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    u = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    assert torch.allclose(edm_euler_step(x, u, 0.002, 0.0), edm_denoised(x, u, 0.002), atol=1e-15)


def test_euler_step_matches_diffusers_euler_scheduler():
    """Eq. (4)-(5) equals EulerDiscreteScheduler.step (v-prediction, no churn) on the same model output."""
    scheduler = EulerDiscreteScheduler.from_config(SV3D_SCHEDULER_CONFIG)
    scheduler.set_timesteps(5)
    sample = torch.randn(1, 4, 4, 4) * float(scheduler.init_noise_sigma)
    for i, timestep in enumerate(scheduler.timesteps):
        output = torch.randn_like(sample)
        sigma, sigma_next = float(scheduler.sigmas[i]), float(scheduler.sigmas[i + 1])
        ours = edm_euler_step(sample.double(), output.double(), sigma, sigma_next)
        theirs = scheduler.step(output, timestep, sample).prev_sample
        assert torch.allclose(ours.float(), theirs, rtol=1e-4, atol=1e-4 * float(sample.abs().max()))
        sample = theirs


def test_schedule_is_sv3ds_karras_sigmas():
    schedule = edm_schedule(50)
    assert schedule.num_steps == 50 and len(schedule.sigmas) == 51
    assert schedule.sigmas[0] == pytest.approx(700.0) and schedule.sigmas[1] == pytest.approx(620.3278, abs=1e-3)
    assert schedule.sigmas[-2] == pytest.approx(0.002) and schedule.sigmas[-1] == 0.0
    assert schedule.init_noise_sigma == pytest.approx(math.sqrt(700.0**2 + 1))
    assert all(a > b for a, b in zip(schedule.sigmas, schedule.sigmas[1:]))


def test_triangle_guidance_over_21_frames():
    scales = triangle_guidance_scales(21, 2.5)
    assert scales[0] == pytest.approx(1.0) and scales[20] == pytest.approx(1.0)
    assert scales[10] == pytest.approx(2.5) and scales[1] == pytest.approx(1.15) and scales[19] == pytest.approx(1.15)
    assert int(scales.argmax()) == 10
