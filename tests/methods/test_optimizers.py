"""method.optimizer=nesterov|anderson: two steps of each against a hand computation; one round trip per step."""
import math

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.methods.optimization import OPTIMIZERS, OptimizationConfig, anderson_step, optimize_noise
from tests.methods.test_optimization import _fixed_map, _hand_gradient


def _run(optimizer, steps=2, **settings):
    torch.manual_seed(1)
    noise = torch.randn(2, 4, 3, 3)
    config = OptimizationConfig(steps=steps, lr=3.0, lr_schedule="constant", optimizer=optimizer,
                                **{"momentum": 0.5, **settings})
    return noise, optimize_noise(noise, [0, 1], _fixed_map, config)


def test_nesterov_follows_its_formula():
    noise, result = _run("nesterov")
    eps, m = noise.clone(), torch.zeros_like(noise)
    for _ in range(2):
        grad = _hand_gradient(eps)[1]
        m = 0.5 * m + grad  # m_i = beta m_{i-1} + g_i
        eps = eps - 3.0 * (grad + 0.5 * m)  # eps -= eta (g_i + beta m_i)
    assert torch.allclose(result.optimized_noise, eps, atol=1e-6)
    assert not torch.allclose(_run("sgd")[1].optimized_noise, eps, atol=1e-3)


def test_anderson_follows_its_formula():
    noise, result = _run("anderson", anderson_memory=1)
    per_sample = []
    for x0 in noise:
        on_sphere = lambda x: x * x0.norm() / x.norm()  # noqa: E731  each iterate back to |eps_0|
        r0 = -_hand_gradient(x0[None])[1][0]
        x1 = on_sphere(x0 + 3.0 * r0)  # the first step: x_1 = x_0 + b r_0 (no history yet)
        r1 = -_hand_gradient(x1[None])[1][0]
        d_x, d_r = (x1 - x0).flatten().double(), (r1 - r0).flatten().double()
        gamma = float(d_r @ r1.flatten().double()) / float(d_r @ d_r)  # argmin |r_1 - gamma dR|, m = 1
        per_sample.append(on_sphere(x1 + 3.0 * r1 - ((d_x + 3.0 * d_r) * gamma).view_as(x0).float()))
    assert torch.allclose(result.optimized_noise, torch.stack(per_sample), atol=1e-5)
    assert torch.allclose(result.norm_ratio, torch.ones(2), atol=1e-6)
    eps = noise.clone()  # m = 0: projected gradient descent, eps <- |eps_0| (eps - eta grad) / |eps - eta grad|
    for _ in range(2):
        stepped = eps - 3.0 * _hand_gradient(eps)[1]
        eps = stepped * noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) / stepped.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(_run("anderson", anderson_memory=0)[1].optimized_noise, eps, atol=1e-6)


def test_anderson_step_solves_a_linear_fixed_point_in_d_steps():
    # G(x) = x + b r(x) with r(x) = A x - x + c linear: Anderson with enough memory is GMRES and reaches the fixed point
    generator = torch.Generator().manual_seed(0)
    matrix = 0.5 * torch.randn(3, 3, generator=generator, dtype=torch.float64) / math.sqrt(3)
    offset = torch.randn(3, generator=generator, dtype=torch.float64)
    residual = lambda x: matrix @ x - x + offset  # noqa: E731
    iterates, residuals = [torch.zeros(3, dtype=torch.float64)], [residual(torch.zeros(3, dtype=torch.float64))]
    for _ in range(4):
        x = iterates[-1] + anderson_step(torch.stack(iterates), torch.stack(residuals), 0.5, regularization=0.0)
        iterates.append(x)
        residuals.append(residual(x))
    assert float(residuals[-1].norm()) < 1e-10


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_spends_one_round_trip_per_step(optimizer):
    calls = []

    def counted(noise, seeds):
        calls.append(len(seeds))
        return _fixed_map(noise, seeds)

    torch.manual_seed(2)
    config = OptimizationConfig(steps=5, lr=3.0, lr_schedule="constant", optimizer=optimizer)
    result = optimize_noise(torch.randn(1, 4, 3, 3), [0], counted, config)
    assert len(calls) == 6 and [row.step for row in result.trace] == list(range(6))
    assert result.trace[-1].stability[0] > result.trace[0].stability[0]


def test_a_negative_anderson_memory_is_an_error():
    with pytest.raises(NoiseExpError, match="Anderson memory"):
        _run("anderson", anderson_memory=-1)
