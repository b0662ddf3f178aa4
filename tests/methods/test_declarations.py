"""Every method is fully wired (the analogue of diffusers' check_dummies): its yaml exists, it produces exactly the
variants it declares, its comparisons name declared variants and one variant name has one label everywhere."""
from __future__ import annotations

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from noise_exp.errors import NoiseExpError
from noise_exp.methods.declaration import Comparison, Declaration, VariantSpec
from noise_exp.methods.method import REGISTRY, Method, NoiseSelection
from noise_exp.methods.registry import METHOD_CONF, declared_comparisons, known_variants, method_classes
from tests.conftest import compose_cfg

# the cheapest settings each knob allows: two candidates, one optimization step
CHEAP = {"num_seeds": 2, "steps": 1, "batch_size": 2, "shortlist": 1, "unstable_shortlist": 1}


def cheap(cfg: DictConfig) -> None:
    for key, value in CHEAP.items():
        if key in cfg:
            cfg[key] = value
    for nested in ("selection", "optimization"):
        if nested in cfg:
            cheap(cfg[nested])


@pytest.fixture(scope="module")
def shapes():
    model = instantiate(compose_cfg(["model=small_shapes", "model.device=cpu"]).model)
    return model, model.encode_prompt("a triangle and a square")


def yaml_targets() -> dict[str, str]:
    return {path.stem: OmegaConf.load(path)["_target_"] for path in sorted(METHOD_CONF.glob("*.yaml"))}


def test_every_registered_method_has_a_yaml_and_every_yaml_a_registered_method():
    classes = {name: get_class(target) for name, target in yaml_targets().items()}
    assert sorted(classes) == sorted(cls.name for cls in method_classes())
    assert {name: cls.name for name, cls in classes.items()} == {name: name for name in classes}


@pytest.mark.parametrize("option", sorted(yaml_targets()))
def test_a_run_produces_exactly_the_declared_variants(option, shapes):
    model, cond = shapes
    cfg = compose_cfg([f"method={option}"]).method
    if OmegaConf.is_missing(cfg, "verifier"):
        cfg.verifier = "shapes_reward"
    cheap(cfg)
    method = instantiate(cfg)
    output = method.run(model, cond, prompt_index=0)
    produced = [v.name for v in output.variants]  # in the run's order; the declaration is in report order
    assert sorted(produced) == sorted(method.variant_names()) and len(set(produced)) == len(produced)
    assert method.main_variant in method.variant_names()
    assert set(method.saved_variants()) <= set(method.variant_names())


def test_declarations_agree_across_methods():
    labels: dict[str, set[str]] = {}
    for cls in method_classes():
        for spec in cls.variants:
            labels.setdefault(spec.name, set()).add(spec.label)
            assert spec.starts_from is None or spec.starts_from in cls.variant_names()
        for comparison in cls.comparisons:
            assert {comparison.a, comparison.b} <= set(known_variants())
    assert {name: len(found) for name, found in labels.items()} == {name: 1 for name in labels}
    # the report's and the human-eval page's order: the paper's four first (their order before declarations), then
    # the other methods' by name
    assert [c.key for c in declared_comparisons()] == [
        "stable:unstable", "optimized:original", "stable:baseline", "optimized:baseline", "best:random", "best:worst",
        "reward_optimized:original", "optimized:stable"]


def test_a_method_cannot_produce_or_declare_what_it_does_not_declare():
    selection = NoiseSelection(num_seeds=1)
    with pytest.raises(ValueError, match="does not declare the variant 'optimized'"):
        selection.variant("optimized", 0, 0.5, None, None, 0.0, 1)
    with pytest.raises(TypeError, match="main_variant 'best'"):
        type("Broken", (Method,), {"name": "broken", "variants": (VariantSpec("x", "X", "kept"),),
                                   "main_variant": "best", "run": lambda *a: None})
    with pytest.raises(TypeError, match="comparison x:nowhere"):
        type("Broken", (Method,), {"name": "broken", "variants": (VariantSpec("x", "X", "kept"),),
                                   "comparisons": (Comparison("x", "nowhere"),), "main_variant": "x",
                                   "run": lambda *a: None})
    assert "broken" not in REGISTRY


def test_a_declaration_round_trips_through_json():
    for cls in method_classes():
        assert Declaration.from_json(cls.declaration().to_json()) == cls.declaration()


def test_a_run_folder_reads_its_declaration_from_method_json_then_hydra_then_none(tmp_path):
    from noise_exp.methods.best_of_n import BestOfN
    from noise_exp.rundir.declaration import read_declaration, write_declaration

    assert read_declaration(tmp_path) is None  # a synthetic run, a bank query's folder from before method.json
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text("method:\n  _target_: noise_exp.methods.best_of_n.BestOfN\n")
    assert read_declaration(tmp_path) == BestOfN.declaration()  # a folder written before method.json
    write_declaration(tmp_path, NoiseSelection.declaration())
    assert read_declaration(tmp_path).names == ("unstable", "stable")
    (tmp_path / "method.json").write_text('{"method": "x"}')
    with pytest.raises(NoiseExpError, match="method.json is not a method declaration"):
        read_declaration(tmp_path)


def test_the_summary_counts_prompts_that_ended_below_their_start_and_skips_uninverted_ones():
    from noise_exp.methods.method import NoiseOptimization
    from noise_exp.methods.reward_opt import RewardOptimization
    from noise_exp.runner import _less_stable_after_optimization

    def record(**stability):
        return {"variants": [{"variant": name, "stability": value} for name, value in stability.items()]}

    records = [record(original=0.5, optimized=0.4), record(original=0.5, optimized=0.9)]
    assert _less_stable_after_optimization(records, NoiseOptimization.variants) == 1
    nan = float("nan")
    assert _less_stable_after_optimization([record(original=nan, reward_optimized=nan)],
                                           RewardOptimization.variants) is None
