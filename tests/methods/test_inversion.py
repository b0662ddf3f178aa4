"""model.inversion=fixed_point: the step's equation in closed form, and a better reconstruction than eq. (2)."""
import pytest
import torch

from noise_exp.ddim import ddim_denoise_step, ddim_inversion_step, fixed_point_inversion_step
from noise_exp.errors import NoiseExpError
from noise_exp.methods.compute import NetworkPasses
from tests.methods.conftest import with_settings


def _relative_error(model, noise):
    cond = model.encode_prompt("a handwritten digit 3")
    inverted = model.invert(model.denoise(noise, cond), cond)
    return float(((inverted - noise).flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1)).mean())


def test_fixed_point_step_is_eq2_once_and_inverts_the_denoising_step_when_iterated():
    torch.manual_seed(0)
    x_t = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    offset = torch.randn_like(x_t)
    noise_at = lambda point, alpha_bar: 0.2 * point + offset  # noqa: E731  a contraction: u(x) = 0.2 x + b
    alpha_t, alpha_prev = 0.5, 0.7
    x_prev = ddim_denoise_step(x_t, noise_at(x_t, alpha_t), alpha_t, alpha_prev)
    once = fixed_point_inversion_step(x_prev, noise_at, alpha_prev, alpha_t, 1)
    assert torch.equal(once, ddim_inversion_step(x_prev, noise_at(x_prev, alpha_prev), alpha_prev, alpha_t))
    assert float((once - x_t).abs().max()) > 1e-2  # eq. (2) alone misses x_t
    assert float((fixed_point_inversion_step(x_prev, noise_at, alpha_prev, alpha_t, 40) - x_t).abs().max()) < 1e-12
    with pytest.raises(ValueError):
        fixed_point_inversion_step(x_prev, noise_at, alpha_prev, alpha_t, 0)


def test_fixed_point_reconstructs_the_noise_better_than_eq2(build_model):
    for name, iterations, measured in (("tiny_sd", 6, "0.12 -> 0.0004"), ("small_digits", 3, "0.58 -> 0.31")):
        eq2 = build_model(name, "model.guidance_scale=1", "model.inversion_guidance_scale=1")  # one ODE both ways
        refined = with_settings(eq2, inversion="fixed_point", inversion_iterations=iterations)
        noise = eq2.draw_noise(range(4))
        errors = _relative_error(eq2, noise), _relative_error(refined, noise)
        if name == "tiny_sd":  # random weights: each step's map contracts, the refinement converges
            assert errors[0] > 0.05 and errors[1] < 0.005, (name, errors, measured)
        else:  # the trained model's steps are not contractions: better, far from exact
            assert errors[1] < 0.75 * errors[0], (name, errors, measured)


@pytest.mark.parametrize("settings, iterations, calls", [
    ({}, 1, 10 * (2 + 1)),  # CFG while denoising, one pass per inversion step
    ({"inversion": "fixed_point"}, 3, 10 * (2 + 3)),
    ({"inversion": "fixed_point", "inversion_iterations": 2, "inversion_guidance_scale": 3.0}, 2, 10 * (2 + 2 * 2)),
])
def test_network_passes_per_round_trip_match_the_count(digits, settings, iterations, calls):
    model = with_settings(digits, **settings)
    cond = model.encode_prompt("a handwritten digit 5")
    noise = model.draw_noise([0, 1])
    with NetworkPasses(model.network) as passes:
        model.invert(model.denoise(noise, cond), cond)
    assert model.unet_calls_per_roundtrip == calls
    assert passes.count == 2 * calls
    assert model.describe()["inversion_iterations"] == iterations


def test_one_iteration_is_eq2_exactly(digits):
    cond = digits.encode_prompt("a handwritten digit 7")
    latents = digits.denoise(digits.draw_noise([3]), cond)
    once = with_settings(digits, inversion="fixed_point", inversion_iterations=1)
    assert torch.equal(once.invert(latents, cond), digits.invert(latents, cond))


def test_bad_inversion_settings_are_one_line_errors(build_model):
    with pytest.raises(NoiseExpError, match="model.inversion 'exact'"):
        build_model("small_digits", "model.inversion=exact")
    with pytest.raises(NoiseExpError, match="model.inversion_iterations"):
        build_model("small_digits", "model.inversion=fixed_point", "model.inversion_iterations=0")
