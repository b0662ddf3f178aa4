"""Every option of every config group composes, and builds the object it names."""
import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from noise_exp.data import PromptSet
from noise_exp.methods import Method
from tests.conftest import CONF, compose_cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_group_has_its_documented_options():
    assert {"tiny_sdxl", "tiny_sd", "sdxl", "sdxl_turbo", "sd15"} <= set(options("model"))
    assert {"select", "optimize", "select_optimize", "baseline"} <= set(options("method"))
    assert {"drawbench", "pickapic", "geneval", "prompts"} <= set(options("dataset"))
    assert "none" in options("evaluator")


@pytest.mark.parametrize("model", options("model"))
def test_model_configs_compose_with_the_interface_keys(model):
    cfg = compose_cfg([f"model={model}"])
    for key in ["pretrained", "num_steps", "guidance_scale", "inversion_guidance_scale", "height", "width", "dtype", "device"]:
        assert key in cfg.model, (model, key)
    if "sv3d" not in model:  # SV3D inverts with its own triangle CFG (null = same as sampling)
        assert cfg.model.inversion_guidance_scale == 1.0
    OmegaConf.to_container(cfg.model, resolve=True)


def test_paper_defaults():
    assert compose_cfg(["model=sdxl_turbo"]).model.num_steps == 4
    assert compose_cfg(["model=sdxl_turbo"]).model.timestep_spacing == "trailing"
    assert compose_cfg(["model=sdxl"]).model.num_steps == 10
    opt = compose_cfg(["method=optimize"]).method
    assert (opt.steps, opt.lr, opt.momentum, opt.lr_schedule, opt.optimizer) == (100, 100.0, 0.5, "cosine", "sgd")
    sel = compose_cfg(["method=select"]).method
    assert (sel.num_seeds, sel.seed_start) == (100, 0)


@pytest.mark.parametrize("method", options("method"))
def test_method_configs_instantiate(method):
    cfg = compose_cfg([f"method={method}"]).method
    if OmegaConf.is_missing(cfg, "verifier"):  # best_of_n / reward_opt: the user names the verifier
        with pytest.raises(MissingMandatoryValue, match="method.verifier"):
            instantiate(cfg)
        cfg.verifier = "shapes_reward"
    obj = instantiate(cfg)
    assert isinstance(obj, Method)
    assert obj.main_variant in obj.variant_names()


@pytest.mark.parametrize("dataset", options("dataset"))
def test_dataset_configs_instantiate(dataset, tmp_path):
    overrides = [f"dataset={dataset}"]
    if dataset == "prompts":
        (tmp_path / "p.txt").write_text("a cat\na dog\n")
        overrides.append(f"dataset.path={tmp_path / 'p.txt'}")
    if dataset == "omniobject3d":
        from noise_exp.data.orbit_fixture import make_orbit_fixture

        make_orbit_fixture(tmp_path / "orbits", 1, 84, 16)
        overrides.append(f"dataset.path={tmp_path / 'orbits'}")
    obj = instantiate(compose_cfg(overrides).dataset)
    assert isinstance(obj, PromptSet) or dataset == "omniobject3d"
    prompts = obj.load()
    assert prompts and all(p.dataset == obj.name for p in prompts)


def test_data_paths_point_inside_the_project():
    cfg = compose_cfg([])
    assert Path(cfg.paths.data_dir) == CONF.parent / "datasets"
    assert "../shared" not in cfg.dataset.path


@pytest.mark.parametrize("experiment", ["table1", "table2", "fig8"])
@pytest.mark.parametrize("model", ["flux_schnell", "flux_dev", "sd3_medium", "sd35_large"])
def test_paper_experiments_run_on_the_flow_models(experiment, model):
    """`make table1 HYDRA_ARGS=model=flux_schnell`: the paper's protocol with another model family."""
    cfg = compose_cfg([f"experiment={experiment}", f"model={model}"])
    assert cfg.model.name == model and cfg.model._target_.startswith("noise_exp.models.flow_matching.")
    assert cfg.name == experiment and sorted(cfg.evaluator) == ["aes", "hpsv2", "imagereward", "pickscore"]


# --- model configs state only what differs from their base (conf/model_base/) -----------------------------------

MODEL_SNAPSHOT = Path(__file__).parent / "testdata" / "model_configs.json"


def composed_model(model: str) -> dict:
    """conf/model/<model>.yaml as run.py composes it (its base included), interpolations kept as written."""
    return OmegaConf.to_container(compose_cfg([f"model={model}"]).model, resolve=False)


def test_every_model_composes_to_its_recorded_config():
    """The configs were split into a base and what differs; the composed result is what each file said in full before
    (tests/testdata/model_configs.json, written from the full files). A deliberate change updates that file:
    `.venv/bin/python -m tests.test_config`."""
    recorded = json.loads(MODEL_SNAPSHOT.read_text())
    # a model removed is a finding; a model added is not recorded here (adding a family touches no test file)
    assert set(recorded) <= set(options("model")), sorted(set(recorded) - set(options("model")))
    for model in recorded:
        assert composed_model(model) == recorded[model], model


@pytest.mark.parametrize("model", options("model"))
def test_a_model_config_states_only_what_differs_from_its_base(model):
    own = OmegaConf.load(CONF / "model" / f"{model}.yaml")
    (base,) = [entry.split("@")[0].lstrip("/") for entry in own.defaults if entry != "_self_"]
    base_keys = OmegaConf.load(CONF / f"{base}.yaml")
    repeated = [key for key in own if key != "defaults" and key in base_keys and own[key] == base_keys[key]]
    assert not repeated, f"{model}.yaml repeats {repeated} from conf/{base}.yaml"


if __name__ == "__main__":
    MODEL_SNAPSHOT.write_text(json.dumps({m: composed_model(m) for m in options("model")}, indent=1, sort_keys=True))
    print(f"wrote {MODEL_SNAPSHOT}")
