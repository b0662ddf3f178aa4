"""Algorithm 2: the schedule and momentum formulas, and stability going up on the tiny model."""
import math

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods import NoiseOptimization, NoiseSelection, SelectThenOptimize
from noise_exp.methods.optimization import ADAM_EPS, OptimizationConfig, adam_lr_factor, learning_rate, optimize_noise


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


def _hand_gradient(eps):
    """cos(eps, eps') and d/d eps of 1 - cos(eps, eps') with eps' = _fixed_map(eps) held constant, per sample."""
    _, target = _fixed_map(eps, None)
    flat_e, flat_t = eps.flatten(1), target.flatten(1)
    ne, nt = flat_e.norm(dim=1, keepdim=True), flat_t.norm(dim=1, keepdim=True)
    cos = (flat_e * flat_t).sum(1, keepdim=True) / (ne * nt)
    return cos, -(flat_t / (ne * nt) - cos * flat_e / ne**2).view_as(eps)


def test_iterates_follow_momentum_and_schedule_formulas():
    torch.manual_seed(0)
    noise = torch.randn(2, 4, 3, 3)
    config = OptimizationConfig(steps=6, lr=2.0, momentum=0.5, lr_schedule="cosine")
    result = optimize_noise(noise, [0, 1], _fixed_map, config)

    eps, m = noise.clone(), torch.zeros_like(noise)
    for i in range(config.steps):
        cos, grad = _hand_gradient(eps)
        m = 0.5 * m + grad  # m_i = beta m_{i-1} + grad J
        eta = 2.0 * 0.5 * (1 + math.cos(math.pi * i / config.steps))
        assert result.trace[i].lr == pytest.approx(eta)
        assert result.trace[i].stability == pytest.approx(cos.flatten().tolist(), abs=1e-6)
        eps = eps - eta * m  # eps = eps - eta m_i
    assert torch.allclose(result.optimized_noise, eps, atol=1e-5)
    assert torch.equal(result.original_noise, noise)
    assert len(result.trace) == config.steps + 1 and result.trace[-1].step == config.steps
    assert torch.allclose(result.norm_ratio, eps.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1), atol=1e-6)


def test_adam_factor_closed_form():
    # a gradient with d equal entries c: |g| = c sqrt(d), |g / (|g| + e)| = sqrt(d) c / (c + e), so k = c + e
    assert adam_lr_factor(torch.full((4, 8, 8), 3e-4, dtype=torch.float64)) == pytest.approx(3e-4 + ADAM_EPS, rel=1e-12)
    assert adam_lr_factor(torch.zeros(4, 8, 8)) == 0.0


def test_adam_lr_is_in_sgd_terms_step_by_step():
    """Adam's first step is as long as SGD's first step with the same lr; later steps follow Adam's update by hand."""
    torch.manual_seed(2)
    noise = torch.randn(2, 4, 3, 3) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)  # two samples, different gradient norms
    lr, beta1, beta2 = 0.5, 0.5, 0.999
    adam = optimize_noise(noise, [0, 1], _fixed_map, OptimizationConfig(steps=4, lr=lr, momentum=beta1, optimizer="adam"))
    sgd = optimize_noise(noise, [0, 1], _fixed_map, OptimizationConfig(steps=1, lr=lr, momentum=beta1, optimizer="sgd",
                                                                       lr_schedule="constant"))
    _, g0 = _hand_gradient(noise.double())
    assert torch.allclose(sgd.optimized_noise.double(), noise - lr * g0, atol=1e-6)  # SGD's first step: lr |g0| long

    eps, m, v = noise.double(), torch.zeros_like(noise).double(), torch.zeros_like(noise).double()
    factor = [g.norm() / (g / (g.abs() + ADAM_EPS)).norm() for g in g0.double()]  # k per sample, from the first gradient
    for i in range(4):
        cos, grad = _hand_gradient(eps)
        assert adam.trace[i].stability == pytest.approx(cos.flatten().tolist(), abs=1e-6)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        step_size = torch.stack(factor).view(2, 1, 1, 1) * lr * 0.5 * (1 + math.cos(math.pi * i / 4))
        step = step_size * (m / (1 - beta1 ** (i + 1))) / ((v / (1 - beta2 ** (i + 1))).sqrt() + ADAM_EPS)
        if i == 0:  # the same length as SGD's first step
            assert torch.allclose(step.flatten(1).norm(dim=1), lr * g0.flatten(1).norm(dim=1), rtol=1e-9)
        eps = eps - step
    assert torch.allclose(adam.optimized_noise.double(), eps, atol=1e-5)


def test_keep_best_and_early_stop():
    torch.manual_seed(1)
    noise = torch.randn(1, 4, 3, 3)
    best = optimize_noise(noise, [0], _fixed_map, OptimizationConfig(steps=8, lr=50.0, momentum=0.9, keep_best=True))
    assert float(best.optimized_stability[0]) == pytest.approx(max(r.stability[0] for r in best.trace))
    stop = optimize_noise(noise, [0], _fixed_map, OptimizationConfig(steps=50, lr=1.0, early_stop_tol=1.0))
    assert stop.steps_run == 0 and len(stop.trace) == 2


@pytest.mark.parametrize("kwargs,message", [
    ({"optimizer": "lbfgs"}, "unknown method.optimizer 'lbfgs'; choose sgd or adam or nesterov or anderson"),
    ({"lr_schedule": "linear"}, "unknown method.lr_schedule 'linear'; choose cosine or constant"),
    ({"steps": 2.5}, "method.steps must be an integer, got 2.5"),
    ({"steps": -1}, "method.steps must be >= 0, got -1"),
    ({"num_seeds": "abc"}, "method.num_seeds must be an integer, got 'abc'"),
    ({"num_seeds": 0}, "method.num_seeds must be >= 1, got 0"),
    ({"seed_start": True}, "method.seed_start must be an integer, got True"),
    ({"seed_start": -3}, "method.seed_start must be >= 0, got -3"),
    ({"lr": -1.0}, "method.lr must be >= 0.0, got -1.0"),
    ({"lr": float("nan")}, "method.lr must be a finite number, got nan"),
    ({"lr": float("inf")}, "method.lr must be a finite number, got inf"),
    ({"lr": "fast"}, "method.lr must be a finite number, got 'fast'"),
    ({"momentum": 1.0}, "method.momentum must be in [0.0, 1.0), got 1.0"),
    ({"momentum": -0.1}, "method.momentum must be in [0.0, 1.0), got -0.1"),
    ({"keep_best": "yes"}, "method.keep_best must be true or false, got 'yes'"),
    ({"early_stop_tol": -1e-3}, "method.early_stop_tol must be >= 0.0, got -0.001"),
])
def test_invalid_optimization_settings_are_one_line_user_errors(kwargs, message):
    with pytest.raises(NoiseExpError) as err:
        NoiseOptimization(**kwargs)
    assert str(err.value) == message


def test_integral_floats_are_accepted_as_integers():
    method = NoiseOptimization(steps=100.0, num_seeds=10.0, seed_start=5.0)
    assert (method.config.steps, method.num_seeds, method.seed_start) == (100, 10, 5)
    assert isinstance(method.config.steps, int)


@pytest.mark.parametrize("kwargs,message", [
    ({"batch_size": 0}, "method.batch_size must be >= 1, got 0"),
    ({"batch_size": 1.5}, "method.batch_size must be an integer, got 1.5"),
    ({"seeds_per_prompt": "no"}, "method.seeds_per_prompt must be true or false, got 'no'"),
])
def test_invalid_selection_settings_are_one_line_user_errors(kwargs, message):
    with pytest.raises(NoiseExpError) as err:
        NoiseSelection(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("selection,optimization,message", [
    ({"num_seed": 5}, {}, "unknown key(s) method.selection.num_seed; known: num_seeds, seed_start, batch_size, seeds_per_prompt"),
    ({}, {"seed_start": 3}, "unknown key(s) method.optimization.seed_start; known: steps, lr, momentum, lr_schedule, optimizer, "
                            "keep_best, early_stop_tol, anderson_memory"),
    ({"batch_size": 2.5}, {}, "method.selection.batch_size must be an integer, got 2.5"),
    ({}, {"steps": "ten"}, "method.optimization.steps must be an integer, got 'ten'"),
    ({}, {"lr": -100.0}, "method.optimization.lr must be >= 0.0, got -100.0"),
    (5, {}, "method.selection must be a mapping of parameters, got 5"),
])
def test_select_optimize_nested_settings_are_checked(selection, optimization, message):
    with pytest.raises(NoiseExpError) as err:
        SelectThenOptimize(selection, optimization)
    assert str(err.value) == message


@pytest.mark.parametrize("optimizer,lr", [("sgd", 1000.0), ("adam", 1000.0)])
def test_stability_goes_up_on_the_tiny_model_for_several_seeds(tiny_sdxl, optimizer, lr):
    cond = tiny_sdxl.encode_prompt("a blue bird on a branch")
    method = NoiseOptimization(steps=8, lr=lr, optimizer=optimizer, num_seeds=100)
    for prompt_index in (0, 1, 2):
        output = method.run(tiny_sdxl, cond, prompt_index)
        original, optimized = output.variants
        assert original.seed == optimized.seed == prompt_index
        assert optimized.stability > original.stability + 1e-3, (optimizer, prompt_index, original.stability, optimized.stability)
        assert [step for step, _, _ in output.trace] == list(range(9))
        assert original.norm_ratio == 1.0
        assert optimized.norm_ratio == pytest.approx(float(optimized.noise.norm() / original.noise.norm()), rel=1e-6)


def test_adam_with_the_default_lr_keeps_the_noise_length(tiny_sd):
    """With lr 100 in SGD's terms Adam moves eps by a few percent, not to +-100 per entry (|eps| x ~190 before)."""
    cond = tiny_sd.encode_prompt("a blue bird on a branch")
    output = NoiseOptimization(steps=3, lr=100.0, optimizer="adam").run(tiny_sd, cond, 0)
    original, optimized = output.variants
    assert 0.95 < optimized.norm_ratio < 1.05, optimized.norm_ratio
    assert optimized.norm_ratio != 1.0
