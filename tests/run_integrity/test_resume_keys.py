"""A resume that changes any one result-determining key is refused, key by key (issue 25).

One real run makes a run folder with a finished prompt; then, for every key of a set of configs that together hold
every model, method, dataset and experiment key, the runner's own resume check (`_checked_fingerprint`, and
`_record_weights` for the weights' identity) is called with that one key changed. The configs are composed once
and changed as plain mappings (what `run_fingerprint` reads): 130 keys, 94 of them result-determining, checked
in about a second after the run.
"""
from __future__ import annotations

import copy
import json

import pytest
from omegaconf import OmegaConf

from noise_exp.errors import NoiseExpError
from noise_exp.rundir.fingerprint import (RUN_FILE, WEIGHTS_KEY, read_fingerprint, run_fingerprint,
                                          write_fingerprint)
from noise_exp.rundir.store import RunStore
from noise_exp.runner import _checked_fingerprint, _record_weights, run_experiment
from noise_exp.settings import flatten
from tests.conftest import compose_cfg

RUN = ["model=tiny_sd", "method=select", "method.num_seeds=2", "dataset=drawbench", "dataset.limit=1",
       "save_noise=false"]
# every key of every model, method, dataset and experiment config appears in at least one of these
CONFIGS = [
    RUN,
    ["model=tiny_flux", "method=reward_opt", "method.verifier=shapes_reward"],
    ["model=tiny_sd3", "method=optimize"],
    ["model=tiny_sdxl", "method=best_of_n", "method.verifier=shapes_reward"],
    ["model=small_digits", "method=select_fast"],
    ["model=tiny_sv3d", "dataset=omniobject3d", "method=select_optimize"],
    ["experiment=compare_methods"],
]
# What may change between a run and its resume, by group: how and where it runs, what is logged or saved, which
# subset of prompts a job takes, how the tiny weights are built (their content is hashed into model.weights).
MAY_DIFFER = {
    "": {"name", "save_images", "save_noise"},
    "model": {"name", "device", "builder", "compile_unet", "channels_last", "attention_slicing"},
    "method": {"batch_size", "score_candidates", "selection.batch_size"},
    "dataset": {"limit", "offset", "num_shards", "shard_index", "report"},
}
OUTSIDE = ("hydra", "paths", "evaluator", "logger", "bank", "report")  # groups that never touch a prompt's record


def may_differ(key: str) -> bool:
    group, _, rest = key.partition(".") if key.split(".")[0] in MAY_DIFFER else ("", "", key)
    return key.split(".")[0] in OUTSIDE or any(rest == k or rest.startswith(k + ".") for k in MAY_DIFFER[group])


VALID_CHANGES = {"model.device": "meta"}  # a neutral key the fingerprint reads (model.dtype "auto" resolves by it)


def changed(key: str, value):
    """Another value of the same kind."""
    if key in VALID_CHANGES:
        return VALID_CHANGES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return [*value, "changed"]
    return "changed" if value is None else f"{value}_changed"


def with_key(container: dict, key: str, value) -> dict:
    changed_container = copy.deepcopy(container)
    *parents, leaf = key.split(".")
    node = changed_container
    for part in parents:
        node = node[part]
    node[leaf] = value
    return changed_container


def refusal(action) -> str | None:
    try:
        action()
    except NoiseExpError as err:
        return str(err)
    return None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    run_experiment(compose_cfg(RUN), run_dir)
    return run_dir, (run_dir / RUN_FILE).read_bytes()


@pytest.fixture
def run_dir(finished_run):
    """The finished run's folder, with its own run.json back after each test."""
    run_dir, run_json = finished_run
    yield run_dir
    (run_dir / RUN_FILE).write_bytes(run_json)


def test_a_resume_that_changes_any_result_key_is_refused(run_dir):
    store = RunStore(run_dir, save_noise=False)
    assert len(store.records()) == 1
    record = (run_dir / "prompts" / "0.json").read_bytes()
    missing, accepted, refused_neutral, checked = [], [], [], set()
    for overrides in CONFIGS:
        container = OmegaConf.to_container(compose_cfg(overrides), resolve=True)
        keys = flatten({k: v for k, v in container.items() if k != "hydra"})
        recorded = run_fingerprint(container)
        # the fingerprint holds exactly the keys that may not differ (a key made neutral or dropped shows here)
        missing += [(key, overrides[0]) for key in keys if not may_differ(key) and key not in recorded.settings]
        refused_neutral += [key for key in recorded.settings if may_differ(key)]
        write_fingerprint(run_dir, recorded)
        for key, value in keys.items():
            if key in checked:
                continue
            checked.add(key)
            message = refusal(lambda: _checked_fingerprint(with_key(container, key, changed(key, value)), run_dir, store))
            group = key.rsplit(".", 1)[0]
            names_it = message is not None and (f"{key}:" in message or
                                                (key.endswith("._target_") and f"{group}:" in message))
            if may_differ(key) != (message is None) or (message is not None and not names_it):
                accepted.append((key, value, message))
    assert not missing, f"result keys missing from the fingerprint: {missing}"
    assert not refused_neutral, f"neutral keys in the fingerprint: {refused_neutral}"
    assert not accepted, f"a resume changing these keys was judged wrongly: {accepted}"
    assert {"model.num_steps", "model.guidance_scale", "model.timestep_spacing", "model.inversion",
            "method.similarity", "method.steps", "method.optimization.lr", "dataset.path", "prompt",
            "compare.held_out", "model.max_sequence_length", "model.sigma_max"} <= checked
    assert (run_dir / "prompts" / "0.json").read_bytes() == record  # nothing written by the refused checks


def test_other_weights_are_refused_once_the_model_is_loaded(run_dir, tmp_path):
    """The weights' identity is checked after loading (`_record_weights`), against the one run.json holds."""
    recorded = read_fingerprint(run_dir)
    assert recorded.settings[WEIGHTS_KEY].startswith("sha256:")
    other = tmp_path / "tiny-sd"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"retrained": True}))
    cfg = compose_cfg(RUN + [f"model.pretrained={other}"])
    message = refusal(lambda: _record_weights(cfg, RunStore(run_dir, save_noise=False), recorded))
    assert message is not None and f"{WEIGHTS_KEY}: '{recorded.settings[WEIGHTS_KEY]}' -> 'sha256:" in message
    same = compose_cfg(RUN)
    assert _record_weights(same, RunStore(run_dir, save_noise=False), recorded).settings == recorded.settings
