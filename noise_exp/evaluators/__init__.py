"""Image scorers behind one interface (see `noise_exp.evaluators.base.Evaluator`).

`build_evaluators(cfg.evaluator)` instantiates the Hydra `evaluator` group (a mapping name -> config with
`_target_`) and loads each scorer's weights; the mapping's keys name the results.csv columns.
"""
from __future__ import annotations

from typing import Any, Mapping

from noise_exp.evaluators.base import Evaluator

__all__ = ["Evaluator", "build_evaluators"]


def build_evaluators(config: Mapping[str, Any] | None, load: bool = True) -> dict[str, Evaluator]:
    """One evaluator per entry of the composed `evaluator` group (empty for `evaluator=none`), with its weights
    loaded unless `load=False`: a missing or corrupt checkpoint fails here, before any image is generated."""
    from hydra.utils import instantiate

    from noise_exp.errors import NoiseExpError
    from noise_exp.evaluators.weights import first_line

    built: dict[str, Evaluator] = {}
    for name, entry in (config or {}).items():
        if entry is None:
            continue
        if "_target_" not in entry:
            raise NoiseExpError(f"evaluator.{name} has no _target_")
        try:
            evaluator = instantiate(entry)
        except NoiseExpError:
            raise
        except Exception as error:  # a bad _target_ or argument in the config
            cause = error.__cause__ or error
            raise NoiseExpError(f"cannot build evaluator.{name}: {first_line(cause)}") from None
        if not isinstance(evaluator, Evaluator):
            raise NoiseExpError(f"evaluator.{name} (_target_={entry['_target_']}) is not an Evaluator")
        if load:
            try:
                evaluator.load()
            except OSError as error:  # a tokenizer or config file that is missing or unreadable
                raise NoiseExpError(f"cannot load evaluator.{name}: {first_line(error)}") from None
        built[str(name)] = evaluator
    return built
