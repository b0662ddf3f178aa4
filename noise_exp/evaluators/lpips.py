"""LPIPS (Zhang et al., 2018): learned perceptual distance between an image and its reference; lower is better.

The `lpips` package ships its calibrated linear layers; the ImageNet backbone (torchvision AlexNet or VGG16) is
loaded here from a local torchvision state dict (`backbone_weights`) or torchvision's official URL, never by
lpips itself (which would download without a timeout). `random_backbone=true` is for offline tests only.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import Evaluator, to_rgb
from noise_exp.evaluators.weights import cached, first_line, read_checkpoint, resolve

BACKBONE_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}


def backbone_state_to_lpips(state: dict[str, torch.Tensor], lpips_net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map torchvision `features.{i}.*` keys onto lpips' `slice{k}.{i}.*` (lpips keeps torchvision's indices)."""
    owner = {}
    for slice_name, module in lpips_net.named_children():
        for index, _ in module.named_children():
            owner[index] = slice_name
    mapped = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] != "features":
            continue  # classifier weights: unused by LPIPS
        if parts[1] not in owner:
            raise NoiseExpError(f"backbone key {key} has no LPIPS counterpart")
        mapped[".".join([owner[parts[1]], *parts[1:]])] = value
    return mapped


def load_lpips(net: str, backbone_weights, random_backbone: bool, device: torch.device):
    import lpips

    if net not in BACKBONE_URLS:
        raise NoiseExpError(f"evaluator.lpips.net={net} is not one of {sorted(BACKBONE_URLS)}")
    path = None
    if not random_backbone:
        path = resolve(backbone_weights, weight=f"torchvision {net} ImageNet backbone for LPIPS",
                       config_key="evaluator.lpips.backbone_weights", url=BACKBONE_URLS[net])

    def load():
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if path is not None:
            try:
                model.net.load_state_dict(backbone_state_to_lpips(read_checkpoint(path), model.net), strict=True)
            except RuntimeError as error:
                raise NoiseExpError(f"{path} does not fit the LPIPS {net} backbone: {first_line(error)}") from None
        return model.to(device).eval().requires_grad_(False)

    return cached(("lpips", net, str(path), str(device)), load)


def paired_tensors(images: Sequence[Image.Image], references: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] tensors of same-size images; each reference is resized (bicubic) to its image's size."""
    first, second = [], []
    for image, reference in zip(images, references):
        image, reference = to_rgb(image), to_rgb(reference)
        if reference.size != image.size:
            reference = reference.resize(image.size, Image.BICUBIC)
        first.append(TF.to_tensor(image))
        second.append(TF.to_tensor(reference))
    return torch.stack(first), torch.stack(second)


def score_pairs(images: Sequence[Image.Image], references: Sequence[Image.Image], batch_size: int,
                measure: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply `measure` to batches of (image, reference) pairs of one image size; scores in input order."""
    scores = torch.zeros(len(images), dtype=torch.float32)
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(image.size, []).append(index)
    for indices in by_size.values():
        for start in range(0, len(indices), max(1, batch_size)):
            chunk = indices[start:start + batch_size]
            first, second = paired_tensors([images[i] for i in chunk], [references[i] for i in chunk])
            scores[chunk] = measure(first, second).flatten().cpu().float()
    return scores


class LPIPS(Evaluator):
    name = "lpips"
    higher_is_better = False
    needs_references = True

    def __init__(self, net: str = "alex", backbone_weights: str | None = None, random_backbone: bool = False,
                 device: str | None = None, dtype: str = "float32", batch_size: int = 16):
        super().__init__(device, "float32", batch_size)  # lpips' layers are float32 only
        self.net, self.backbone_weights, self.random_backbone = net, backbone_weights, bool(random_backbone)

    def _load(self):
        return load_lpips(self.net, self.backbone_weights, self.random_backbone, self.device)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        model = self.load()
        return score_pairs(images, references, self.batch_size,
                           lambda first, second: model(first.to(self.device), second.to(self.device), normalize=True))
