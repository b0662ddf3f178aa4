"""Algorithm 2: the schedule and momentum formulas, and stability going up on the tiny model."""
import math

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods import NoiseOptimization
from noise_exp.methods.optimization import OptimizationConfig, learning_rate, optimize_noise


def test_cosine_and_constant_learning_rates():
    config = OptimizationConfig(steps=100, lr=100.0, lr_schedule="cosine")
    assert learning_rate(0, config) == 100.0
    assert learning_rate(50, config) == pytest.approx(50.0)
    assert learning_rate(100, config) == pytest.approx(0.0)
    assert learning_rate(25, config) == pytest.approx(50 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(37, OptimizationConfig(steps=100, lr=3.0, lr_schedule="constant")) == 3.0
    with pytest.raises(NoiseExpError):
        learning_rate(0, OptimizationConfig(lr_schedule="step"))


def _fixed_map(noise, seeds):
    """A closed-form stand-in for F: a fixed linear map (rotation-like mixing), so eps' is known exactly."""
    inverted = 0.9 * noise + 0.3 * torch.roll(noise, 1, dims=-1)
    return noise.clone(), inverted


def test_iterates_follow_momentum_and_schedule_formulas():
    torch.manual_seed(0)
    noise = torch.randn(2, 4, 3, 3)
    config = OptimizationConfig(steps=6, lr=2.0, momentum=0.5, lr_schedule="cosine")
    result = optimize_noise(noise, [0, 1], _fixed_map, config)

    eps, m = noise.clone(), torch.zeros_like(noise)
    for i in range(config.steps):
        _, target = _fixed_map(eps, None)
        flat_e, flat_t = eps.flatten(1), target.flatten(1)
        ne, nt = flat_e.norm(dim=1, keepdim=True), flat_t.norm(dim=1, keepdim=True)
        cos = (flat_e * flat_t).sum(1, keepdim=True) / (ne * nt)
        grad = -(flat_t / (ne * nt) - cos * flat_e / ne**2)  # d/d eps of 1 - cos(eps, eps') with eps' constant
        m = 0.5 * m + grad.view_as(eps)  # m_i = beta m_{i-1} + grad J
        eta = 2.0 * 0.5 * (1 + math.cos(math.pi * i / config.steps))
        assert result.trace[i].lr == pytest.approx(eta)
        assert result.trace[i].stability == pytest.approx(cos.flatten().tolist(), abs=1e-6)
        eps = eps - eta * m  # eps = eps - eta m_i
    assert torch.allclose(result.optimized_noise, eps, atol=1e-5)
    assert torch.equal(result.original_noise, noise)
    assert len(result.trace) == config.steps + 1 and result.trace[-1].step == config.steps


def test_keep_best_and_early_stop():
    torch.manual_seed(1)
    noise = torch.randn(1, 4, 3, 3)
    best = optimize_noise(noise, [0], _fixed_map, OptimizationConfig(steps=8, lr=50.0, momentum=0.9, keep_best=True))
    assert float(best.optimized_stability[0]) == pytest.approx(max(r.stability[0] for r in best.trace))
    stop = optimize_noise(noise, [0], _fixed_map, OptimizationConfig(steps=50, lr=1.0, early_stop_tol=1.0))
    assert stop.steps_run == 0 and len(stop.trace) == 2


def test_invalid_optimizer_settings_are_user_errors():
    with pytest.raises(NoiseExpError, match="optimizer"):
        NoiseOptimization(optimizer="lbfgs")
    with pytest.raises(NoiseExpError, match="lr_schedule"):
        NoiseOptimization(lr_schedule="linear")


@pytest.mark.parametrize("optimizer,lr", [("sgd", 1000.0), ("adam", 0.2)])
def test_stability_goes_up_on_the_tiny_model_for_several_seeds(tiny_sdxl, optimizer, lr):
    cond = tiny_sdxl.encode_prompt("a blue bird on a branch")
    method = NoiseOptimization(steps=8, lr=lr, optimizer=optimizer, num_seeds=100)
    for prompt_index in (0, 1, 2):
        output = method.run(tiny_sdxl, cond, prompt_index)
        original, optimized = output.variants
        assert original.seed == optimized.seed == prompt_index
        assert optimized.stability > original.stability + 1e-3, (optimizer, prompt_index, original.stability, optimized.stability)
        assert [step for step, _, _ in output.trace] == list(range(9))
