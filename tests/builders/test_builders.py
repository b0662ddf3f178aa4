"""The model builders (noise_exp/builders/): one pattern, and a folder that depends on `seed` only."""
from hydra.utils import instantiate
from omegaconf import OmegaConf

from noise_exp.builders.base import PipelineBuilder
from noise_exp.builders.tiny_sd import TinySDBuilder
from tests.conftest import CONF


def test_every_model_builder_follows_the_one_builder_pattern():
    builders = [OmegaConf.load(path).get("builder") for path in sorted((CONF / "model").glob("*.yaml"))]
    built = [instantiate(builder) for builder in builders if builder]
    assert len(built) == 8 and all(isinstance(builder, PipelineBuilder) for builder in built)


def folder_bytes(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_builder_writes_the_same_files_for_a_seed_and_other_weights_for_another(tmp_path):
    first, again, other = (folder_bytes(TinySDBuilder(kind="sd", seed=seed)(tmp_path / name))
                           for seed, name in [(0, "a"), (0, "b"), (1, "c")])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary folder left
    assert first == again
    assert set(other) == set(first) and other["unet/diffusion_pytorch_model.safetensors"] != first[
        "unet/diffusion_pytorch_model.safetensors"]
