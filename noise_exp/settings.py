"""Which config keys determine a run's numbers: the one policy shared by run-folder fingerprints and sweep reports.

A *result key* changes what a prompt's record holds (model and its weights, sampler, method and its parameters,
similarity, which text a prompt id stands for). A *neutral key* does not: evaluators, logging, batch size, save
options, devices and speed options, and the subset / shard of prompts a job runs. Neutral keys may differ between a
run and its resume, and they never split a sweep into separate settings.
"""
from __future__ import annotations

from typing import Any, Mapping

# Dotted prefixes of keys that do not change a prompt's record (a prefix matches the key and all keys below it).
NEUTRAL_KEYS: tuple[str, ...] = (
    "hydra", "evaluator", "logger", "paths", "save_images", "save_noise", "name",
    "model.name", "model.device", "model.builder", "model.compile_unet", "model.channels_last",
    "model.attention_slicing",
    "method.batch_size", "method.selection.batch_size", "method.score_candidates",
    "dataset.limit", "dataset.offset", "dataset.num_shards", "dataset.shard_index", "dataset.report",
    "bank", "report",
)


def override_key(override: str) -> str:
    """The dotted key of a Hydra override: `+model.num_steps=5` -> `model.num_steps`, `hydra/launcher=x` ->
    `hydra.launcher`, `~logger` -> `logger`."""
    key = override.split("=", 1)[0].strip().lstrip("+~")
    return key.replace("/", ".").split("@", 1)[0]


def is_result_key(key: str) -> bool:
    """True when `key` (dotted, or an override like `model.num_steps=5`) determines a run's numbers."""
    key = override_key(key)
    return not any(key == prefix or key.startswith(prefix + ".") for prefix in NEUTRAL_KEYS)


def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as {"a.b.c": leaf}; lists stay leaves."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


UNSET = "<unset>"


def differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (old value, new value)} for the keys whose values differ, in key order (`<unset>` where one lacks it)."""
    keys = sorted(set(old) | set(new))
    return {k: (old.get(k, UNSET), new.get(k, UNSET)) for k in keys if old.get(k, UNSET) != new.get(k, UNSET)}
