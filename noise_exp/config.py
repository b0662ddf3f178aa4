"""The configs of `conf/` seen from code: their OmegaConf resolvers (registered when `noise_exp` is imported) and
sweep folder names, composing them outside `run.py`, and the old `_target_`s of saved configs upgraded to today's."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# Neutral keys that still pick which prompts a job runs: jobs differing only in them need folders of their own.
SUBSET_KEYS = ("dataset.limit", "dataset.offset", "dataset.num_shards", "dataset.shard_index")


def job_dirname(overrides: Sequence[str]) -> str:
    """A sweep job's folder name from its overrides: the result-determining ones (and the prompt subset), as
    `dataset=drawbench,model.num_steps=5`; evaluators, logger, launcher and `experiment` are left out, list values
    lose their brackets (`[a,b]` -> `a+b`) and `/` becomes `-`. `default` when nothing is left."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from noise_exp.settings import is_result_key

    parts = []
    for override in OverridesParser.create().parse_overrides([str(o) for o in overrides]):
        key = override.key_or_group.replace("/", ".")
        if key == "experiment" or not (is_result_key(key) or key in SUBSET_KEYS):
            continue
        value = override.get_value_element_as_str()
        if value.startswith("[") and value.endswith("]"):
            value = "+".join(item.strip() for item in value[1:-1].split(","))
        parts.append(f"{key}={value}".replace("/", "-"))
    return ",".join(parts) or "default"


def register_resolvers() -> None:
    """`${noise_exp_root:}` is the project folder (holds conf/, datasets/ and the default model cache);
    `${job_dirname:${hydra.overrides.task}}` names a sweep job's folder (`job_dirname`)."""
    OmegaConf.register_new_resolver("noise_exp_root", lambda: str(PROJECT_ROOT), replace=True)
    OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


CONF_DIR = PROJECT_ROOT / "conf"


# Where a class that a run folder or a bank may have saved as a `_target_` lives now (issue 21 moved them): old
# prefix -> new prefix. Saved configs are upgraded when they are re-instantiated (`upgrade_targets`); every value
# must resolve (tests/test_legacy_targets.py).
LEGACY_TARGETS: dict[str, str] = {
    # S3: the evaluators package moved under noise_exp.
    "evaluators.": "noise_exp.evaluators.",
    # S7: the model builders (a model config's `builder`, kept in a bank's model configs) moved to builders/ and,
    # for the two trained worlds, to training/.
    "noise_exp.models.tiny.TinyPipelineBuilder": "noise_exp.builders.tiny_sd.TinySDBuilder",
    "noise_exp.models.tiny_flow.": "noise_exp.builders.tiny_flow.",
    "noise_exp.models.sv3d_components.TinySV3DBuilder": "noise_exp.builders.tiny_sv3d.TinySV3DBuilder",
    "noise_exp.models.digits.DigitsPipelineBuilder": "noise_exp.training.digits.DigitsPipelineBuilder",
    "noise_exp.models.shapes.ShapesPipelineBuilder": "noise_exp.training.shapes.ShapesPipelineBuilder",
}


def upgrade_target(target: str) -> str:
    """`target` with its `LEGACY_TARGETS` prefix (the longest that matches) replaced by today's module path."""
    old = max((prefix for prefix in LEGACY_TARGETS if target.startswith(prefix)), key=len, default=None)
    return target if old is None else LEGACY_TARGETS[old] + target[len(old):]


def upgrade_targets(node: Any) -> Any:
    """A saved config with every `_target_` it holds (at any depth, in mappings and lists) upgraded by
    `LEGACY_TARGETS`. A DictConfig/ListConfig comes back as one, its interpolations kept unresolved: pass the
    whole saved config, so that they still resolve against its root."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.create(upgrade_targets(OmegaConf.to_container(node, resolve=False)))
    if isinstance(node, Mapping):
        return {key: upgrade_target(value) if key == "_target_" and isinstance(value, str) else upgrade_targets(value)
                for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [upgrade_targets(item) for item in node]
    return node


def compose_config(overrides: Sequence[str] = (), config_name: str | None = "config") -> DictConfig:
    """Compose `conf/` with Hydra overrides outside `run.py` (studies, benchmark, tests), as `run.py` would."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name=config_name, overrides=list(overrides))
