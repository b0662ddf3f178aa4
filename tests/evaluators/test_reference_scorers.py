"""Equality with the official implementations where they can be imported here (test-only imports)."""
from __future__ import annotations

import shutil
import sys
import types

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.hpsv2 import HPSv2
from noise_exp.evaluators.lpips import LPIPS
from noise_exp.evaluators.ssim import SSIM
from tests.support import scorers
from tests.support.scorers import assert_valid_scores


@pytest.fixture
def official_hpsv2(tiny_folder, monkeypatch):
    """The `hpsv2` 1.2.0 wheel, unpacked, not installed. Test-only adjustments, none of them in its scoring path:
    a stub for `clint` (a progress-bar import), the BPE vocabulary its wheel lacks (copied from open_clip), and
    the architecture swapped for the tiny one (as the real run swaps nothing but downloads ViT-H-14)."""
    root = scorers.reference_wheel("hpsv2", tiny_folder / "wheels")
    if root is None:
        pytest.skip("hpsv2 wheel not found: run `make reference-wheels`")
    import open_clip

    vocab = root / "hpsv2" / "src" / "open_clip" / "bpe_simple_vocab_16e6.txt.gz"
    if not vocab.exists():
        shutil.copy(open_clip.tokenizer.default_bpe(), vocab)
    clint = types.ModuleType("clint")
    clint.textui = types.ModuleType("clint.textui")
    clint.textui.progress = None
    monkeypatch.setitem(sys.modules, "clint", clint)
    monkeypatch.setitem(sys.modules, "clint.textui", clint.textui)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("HPS_ROOT", str(tiny_folder / "hps_root"))
    import hpsv2.img_score as img_score
    from hpsv2.src.open_clip import add_model_config, create_model_and_transforms

    config, checkpoint = scorers.tiny_hps(tiny_folder)
    add_model_config(config)

    def tiny_model_and_transforms(name, pretrained, **kwargs):
        return create_model_and_transforms(config.stem, None, **kwargs)

    monkeypatch.setattr(img_score, "create_model_and_transforms", tiny_model_and_transforms)
    monkeypatch.setattr(img_score, "model_dict", {})
    monkeypatch.setattr(img_score, "device", "cpu")
    yield img_score, config, checkpoint
    for name in [m for m in sys.modules if m == "hpsv2" or m.startswith("hpsv2.")]:
        del sys.modules[name]


def test_hpsv2_equals_official_score(official_hpsv2, images, prompts):
    img_score, config, checkpoint = official_hpsv2
    ours = HPSv2(checkpoint=str(checkpoint), arch=str(config), scale=1.0, device="cpu")
    # hpsv2 crashes on RGBA input and on non-square images whose longest side is already 224: not compared.
    rgb = [image.convert("RGB") for image in images]
    for prompt in prompts:
        official = torch.tensor([float(s) for s in img_score.score(rgb, prompt, cp=str(checkpoint))])
        torch.testing.assert_close(ours.score(rgb, [prompt] * len(rgb)), official, rtol=0, atol=1e-6)


# ---- LPIPS --------------------------------------------------------------------------------------------------

def _features(net):
    import torchvision

    if net == "alex":
        return torchvision.models.alexnet().features
    return torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])


@pytest.fixture(scope="module")
def backbone_files(tmp_path_factory):
    """Random torchvision AlexNet / VGG16 state dicts with torchvision's key names (`features.*`; the classifier
    keys of the official files are left out to keep the test small: LPIPS ignores them)."""
    folder = tmp_path_factory.mktemp("backbones")
    torch.manual_seed(4)
    for net, name in [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth")]:
        state = {f"features.{key}": value for key, value in _features(net).state_dict().items()}
        torch.save(state, folder / name)
    return {"alex": folder / "alexnet-owt-7be5be79.pth", "vgg": folder / "vgg16-397923af.pth"}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_lpips_package_with_the_same_backbone(net, backbone_files, images, monkeypatch):
    """Reference: lpips.LPIPS building its own trunk from torchvision (the constructor made to return our weights)."""
    import lpips

    size = (64, 64) if net == "alex" else (48, 48)
    first = [image.convert("RGB").resize(size) for image in images]
    second = first[1:] + first[:1]
    ours = LPIPS(net=net, backbone_weights=str(backbone_files[net]), device="cpu").score(first, references=second)
    assert_valid_scores(ours, 3)
    assert (ours > 0).all()

    features = _features(net)  # built before the patch: lpips' `tv` is torchvision.models itself

    def with_weights(*args, **kwargs):
        state = torch.load(backbone_files[net], weights_only=True)
        features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()})
        return types.SimpleNamespace(features=features)

    monkeypatch.setattr(lpips.pretrained_networks.tv, {"alex": "alexnet", "vgg": "vgg16"}[net], with_weights)
    reference = lpips.LPIPS(net=net, verbose=False).eval()
    from torchvision.transforms.functional import to_tensor

    with torch.no_grad():
        expected = reference(torch.stack([to_tensor(i) for i in first]), torch.stack([to_tensor(i) for i in second]),
                             normalize=True).flatten()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    same = LPIPS(net=net, backbone_weights=str(backbone_files[net]), device="cpu").score(first, references=first)
    torch.testing.assert_close(same, torch.zeros(3), rtol=0, atol=1e-6)


def test_lpips_offline_without_backbone_names_the_key(monkeypatch, tmp_path, images):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    with pytest.raises(NoiseExpError, match=r"evaluator\.lpips\.backbone_weights"):
        LPIPS(net="vgg", device="cpu").score(images, references=images)


def test_lpips_random_backbone_for_tests(images):
    scores = LPIPS(random_backbone=True, device="cpu").score(images, references=images[::-1])
    assert_valid_scores(scores, 3)
    assert scores[1] == 0 and scores[0] > 0


# ---- SSIM ---------------------------------------------------------------------------------------------------

def test_ssim_equals_pytorch_msssim(images):
    from torchvision.transforms.functional import to_tensor

    first = [image.convert("RGB").resize((64, 64)) for image in images]
    second = [image.rotate(7) for image in first[::-1]]
    ours = SSIM().score(first, references=second)
    assert_valid_scores(ours, 3)
    x = torch.stack([to_tensor(i) for i in first]).double()
    y = torch.stack([to_tensor(i) for i in second]).double()
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    torch.testing.assert_close(ours, pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False).float(),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(SSIM().score(first, references=first), torch.ones(3), rtol=0, atol=1e-6)
