"""The scorer a reward-based method sees (`method.verifier`): built from the `evaluator` config group by name, and
kept apart from the held-out judges of an experiment (`compare.held_out`), so that reward hacking shows up there."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from noise_exp.config import CONF_DIR
from noise_exp.errors import NoiseExpError

if TYPE_CHECKING:
    from noise_exp.evaluators.base import Evaluator

EVALUATOR_CONF = CONF_DIR / "evaluator"


def evaluator_names() -> list[str]:
    """The options of the `evaluator` config group (`none` selects nothing, so it is no scorer)."""
    return sorted(path.stem for path in EVALUATOR_CONF.glob("*.yaml") if path.stem != "none")


def check_held_out(verifier: str, held_out: Sequence[str] | None, key: str = "method.verifier") -> None:
    """A method may not select or optimize with a scorer its results are judged by (`compare.held_out`)."""
    if verifier in (held_out or ()):
        raise NoiseExpError(f"{key}={verifier} is a held-out judge of this experiment ({', '.join(held_out)}); "
                            f"a method may not see the scorer it is judged by: pick another verifier")


def load_verifier(name: str, options: Mapping[str, Any] | None = None, key: str = "method.verifier") -> "Evaluator":
    """The evaluator `conf/evaluator/<name>.yaml` (with `options` merged over its keys), built and loaded the way
    the runner builds `evaluator=[...]`."""
    from omegaconf import OmegaConf

    from noise_exp.evaluators import build_evaluators

    names = evaluator_names()
    if name not in names:
        raise NoiseExpError(f"unknown {key} {name!r}; choose one of {', '.join(names)}")
    node = OmegaConf.load(EVALUATOR_CONF / f"{name}.yaml")
    given = dict(options or {})
    unknown = [option for option in given if option not in node]
    if unknown:
        raise NoiseExpError(f"unknown {key}_options key(s) {', '.join(unknown)} for {name}; known: "
                            f"{', '.join(k for k in node if k != '_target_')}")
    node = OmegaConf.merge(node, given)
    return build_evaluators({name: OmegaConf.to_container(node, resolve=True)})[name]
