"""build_evaluators loads every scorer's weights, so a missing or corrupt checkpoint stops a run before its first image
is generated, with one line naming the file or the config key."""
from __future__ import annotations

import shutil

import pytest
import torch

from noise_exp import score as score_cli
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import build_evaluators
from noise_exp.evaluators.weights import clear_cache
from tests.support import runs, scorers

HTML_PAGE = b"<!DOCTYPE html><html><body>404: the download failed</body></html>\n"


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    """Valid tiny weights of every scorer in the official formats."""
    hps_config, hps_checkpoint = scorers.tiny_hps(tiny_folder)
    _, clip_path, mlp_path = scorers.tiny_aes(tiny_folder)
    model_dir, processor_dir = scorers.tiny_pickscore(tiny_folder)
    return {"clip_config": hps_config, "hps": hps_checkpoint, "clip": clip_path, "mlp": mlp_path,
            "pickscore": model_dir, "processor": processor_dir, "imagereward": scorers.tiny_imagereward(tiny_folder)}


def corrupt_copy(source, target, kind: str):
    """`target` made from `source`'s first half (an interrupted download) or an HTML error page saved instead."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(data[:len(data) // 2] if kind == "truncated" else HTML_PAGE)
    return target


def hpsv2(tiny, tmp_path, kind):
    bad = corrupt_copy(tiny["hps"], tmp_path / "HPS_v2_compressed.pt", kind)
    return bad, {"_target_": "noise_exp.evaluators.hpsv2.HPSv2", "checkpoint": str(bad),
                 "arch": str(tiny["clip_config"])}


def aes_mlp(tiny, tmp_path, kind):
    bad = corrupt_copy(tiny["hps"], tmp_path / "sac+logos+ava1-l14-linearMSE.pth", kind)
    return bad, {"_target_": "noise_exp.evaluators.aes.AES", "mlp_checkpoint": str(bad),
                 "clip_checkpoint": str(tiny["clip"]), "clip_arch": str(tiny["clip_config"])}


def aes_clip(tiny, tmp_path, kind):
    bad = corrupt_copy(tiny["clip"], tmp_path / "open_clip_pytorch_model.bin", kind)
    return bad, {"_target_": "noise_exp.evaluators.aes.AES", "mlp_checkpoint": str(tiny["mlp"]),
                 "clip_checkpoint": str(bad), "clip_arch": str(tiny["clip_config"])}


def clip_s(tiny, tmp_path, kind):
    bad = corrupt_copy(tiny["pickscore"] / "model.safetensors", tmp_path / "open_clip_model.safetensors", kind)
    return bad, {"_target_": "noise_exp.evaluators.clip_score.CLIPScore", "checkpoint": str(bad),
                 "arch": str(tiny["clip_config"])}


def imagereward(tiny, tmp_path, kind):
    reward = tiny["imagereward"]
    bad = corrupt_copy(reward.checkpoint, tmp_path / "ImageReward.pt", kind)
    return bad, {"_target_": "noise_exp.evaluators.imagereward.ImageReward", "checkpoint": str(bad),
                 "med_config": str(reward.med_config), "tokenizer": str(reward.tokenizer),
                 "vision_heads": reward.vision["num_heads"]}


def pickscore(tiny, tmp_path, kind):
    model_dir = tmp_path / "PickScore_v1"
    shutil.copytree(tiny["pickscore"], model_dir)
    bad = corrupt_copy(tiny["pickscore"] / "model.safetensors", model_dir / "model.safetensors", kind)
    return bad, {"_target_": "noise_exp.evaluators.pickscore.PickScore", "model": str(model_dir),
                 "processor": str(tiny["processor"])}


def lpips(tiny, tmp_path, kind):
    bad = corrupt_copy(tiny["hps"], tmp_path / "alexnet-owt-7be5be79.pth", kind)
    return bad, {"_target_": "noise_exp.evaluators.lpips.LPIPS", "net": "alex", "backbone_weights": str(bad)}


@pytest.mark.parametrize("kind", ["truncated", "html"])
@pytest.mark.parametrize("make", [hpsv2, aes_mlp, aes_clip, clip_s, imagereward, pickscore, lpips])
def test_corrupt_checkpoint_fails_at_build_with_one_line_naming_the_file(make, kind, tiny, tmp_path):
    bad, entry = make(tiny, tmp_path, kind)
    with pytest.raises(NoiseExpError) as error:
        build_evaluators({"scorer": {**entry, "device": "cpu"}})
    message = str(error.value)
    assert message.startswith(f"cannot read evaluator weights {bad}: file is corrupt or not a checkpoint ("), message
    assert "\n" not in message


@pytest.mark.parametrize("name, key", [
    ("hpsv2", "evaluator.hpsv2.checkpoint"),
    ("aes", "evaluator.aes.mlp_checkpoint"),
    ("pickscore", "evaluator.pickscore.model"),
    ("imagereward", "evaluator.imagereward.checkpoint"),
    ("lpips", "evaluator.lpips.backbone_weights"),
    ("clip_s", "evaluator.clip_s.checkpoint"),
])
def test_weights_missing_offline_fail_at_build_naming_the_config_key(name, key, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "torch"))
    clear_cache()
    config = score_cli.compose_evaluators([f"evaluator=[{name}]", f"evaluator.{name}.device=cpu"])
    with pytest.raises(NoiseExpError, match=key.replace(".", r"\.")) as error:
        build_evaluators(config)
    assert "\n" not in str(error.value)


def test_built_scorer_holds_its_weights(tiny, tmp_path, images, prompts):
    """Loaded at build: the checkpoint file is not needed any more when the images are scored."""
    def hps(checkpoint):
        return build_evaluators({"hpsv2": {"_target_": "noise_exp.evaluators.hpsv2.HPSv2",
                                           "checkpoint": str(checkpoint), "arch": str(tiny["clip_config"]),
                                           "device": "cpu"}})["hpsv2"]

    checkpoint = tmp_path / "HPS_v2_compressed.pt"
    shutil.copy(tiny["hps"], checkpoint)
    built = hps(checkpoint)
    checkpoint.unlink()  # before the first score
    scores = built.score(images, prompts)
    scorers.assert_valid_scores(scores, len(images))
    # the scores of the same weights loaded from the file that still exists, and not those of other weights (the
    # AES CLIP tower, another seed): the built scorer holds the checkpoint's weights
    assert torch.allclose(scores, hps(tiny["hps"]).score(images, prompts), atol=1e-5)
    assert float((hps(tiny["clip"]).score(images, prompts) - scores).abs().max()) > 1e-2


def test_score_cli_with_a_corrupt_checkpoint_exits_2_with_one_line(tiny, tmp_path, capsys):
    run_dir = runs.write_synthetic_run(tmp_path / "run", {"drawbench": ["a photo of a cat"]}, ("stable",))
    bad = corrupt_copy(tiny["hps"], tmp_path / "HPS_v2_compressed.pt", "truncated")
    code = score_cli.main([str(run_dir), "evaluator=[hpsv2]", f"evaluator.hpsv2.checkpoint={bad}",
                           f"evaluator.hpsv2.arch={tiny['clip_config']}", "evaluator.hpsv2.device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"error: cannot read evaluator weights {bad}: "), err
    assert "hpsv2" not in (run_dir / "results.csv").read_text()  # nothing was scored
