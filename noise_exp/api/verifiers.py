"""The verifiers `nx.best_of_n` and `nx.reward_opt` take (an evaluator by name, or the user's callable), with their
answers checked: one finite number per image, else one NoiseExpError naming the verifier."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from noise_exp.errors import NoiseExpError

ImageScore = Callable[[list[Any], list[str]], Sequence[float]]  # PIL images, prompts -> one score each
PixelReward = Callable[[torch.Tensor, list[str]], torch.Tensor]  # pixels [B, 3, H, W] in [0, 1], prompts -> [B]


def _name(verifier: Any) -> str:
    return repr(verifier) if isinstance(verifier, str) else getattr(verifier, "__name__", type(verifier).__name__)


def _asked(name: str, function: Callable[..., Any], *args: Any) -> Any:
    """The verifier's answer; an exception it raises becomes one NoiseExpError line (the original chained)."""
    try:
        return function(*args)
    except NoiseExpError:
        raise
    except Exception as error:
        raise NoiseExpError(f"verifier {name} raised {type(error).__name__}: {error}") from error


def _check_finite(name: str, values: Sequence[float]) -> None:
    bad = [index for index, value in enumerate(values) if not math.isfinite(value)]
    if bad:
        raise NoiseExpError(f"verifier {name} returned a non-finite value ({values[bad[0]]}) for image {bad[0]} of "
                            f"{len(values)}")


def _scorer(verifier: Any, pixels: bool) -> Callable[..., Any]:
    """The user's callable, or the named evaluator's `score` (images) or differentiable `score_pixels` (pixels)."""
    if callable(verifier):
        return verifier
    from noise_exp.methods.verifier import load_verifier

    evaluator = load_verifier(verifier, key="verifier")
    if not pixels:
        return lambda images, prompts: evaluator.score(images, prompts=prompts)
    if not evaluator.differentiable:
        from noise_exp.evaluators.base import differentiable_evaluators

        raise NoiseExpError(f"verifier={verifier} is not differentiable (no score_pixels): reward_opt needs one of "
                            f"{', '.join(differentiable_evaluators())} or a callable(pixels, prompts) -> rewards")
    return evaluator.score_pixels


def image_score(verifier: str | ImageScore) -> ImageScore:
    """An evaluator (`conf/evaluator/<name>.yaml`) by name, or the user's callable(images, prompts) -> scores."""
    name, score = _name(verifier), _scorer(verifier, pixels=False)

    def checked(images: list[Any], prompts: list[str]) -> list[float]:
        answer = _asked(name, score, images, prompts)
        try:
            values = [float(value) for value in answer]
        except (TypeError, ValueError) as error:
            raise NoiseExpError(f"verifier {name} must return one number per image, got "
                                f"{type(answer).__name__} ({error})") from error
        if len(values) != len(images):
            raise NoiseExpError(f"verifier {name} returned {len(values)} scores for {len(images)} images")
        _check_finite(name, values)
        return values

    return checked


def pixel_reward(verifier: str | PixelReward) -> PixelReward:
    """A differentiable reward of pixels: an evaluator's `score_pixels` by name, or the user's callable."""
    name, reward = _name(verifier), _scorer(verifier, pixels=True)

    def checked(pixels: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        answer = _asked(name, reward, pixels, prompts)
        if not isinstance(answer, torch.Tensor) or tuple(answer.shape) != (len(pixels),):
            got = tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__
            raise NoiseExpError(f"verifier {name} must return a tensor of one reward per image, shape "
                                f"({len(pixels)},), got {got}")
        _check_finite(name, answer.detach().float().cpu().tolist())
        return answer

    return checked
