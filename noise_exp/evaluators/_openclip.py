"""open_clip models shared by HPSv2, AES and CLIP-S: building, loading a checkpoint, preprocessing."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import preprocess
from noise_exp.evaluators.base import to_rgb
from noise_exp.evaluators.weights import cached, first_line, read_checkpoint

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def arch_name(arch: str) -> str:
    """An open_clip model name, or a JSON model config (registered under its file stem)."""
    import open_clip

    path = Path(arch)
    if path.suffix == ".json":
        if not path.is_file():
            raise NoiseExpError(f"open_clip model config {arch} does not exist")
        open_clip.add_model_config(path)
        return path.stem
    return arch


def load_open_clip(arch: str, checkpoint: Path, device: torch.device, dtype: torch.dtype):
    """(model, tokenizer) for `arch` with the weights of `checkpoint`, strict; cached per process."""
    import open_clip

    name = arch_name(arch)

    def load():
        try:
            model = open_clip.create_model(name, pretrained=None)
        except RuntimeError as error:
            raise NoiseExpError(f"unknown open_clip architecture {arch!r}: {error}") from None
        try:
            open_clip.load_checkpoint(model, str(checkpoint), strict=True)
        except Exception as error:
            read_checkpoint(checkpoint)  # a corrupt file raises its own error; reading it twice only on failure
            raise NoiseExpError(f"checkpoint {checkpoint} does not fit open_clip {name}: {first_line(error)}") from None
        model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        return model, open_clip.get_tokenizer(name)

    return cached(("open_clip", name, str(checkpoint), str(device), dtype), load)


def image_size(model) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def resize_longest_and_pad(image: Image.Image, size: int) -> torch.Tensor:
    """HPSv2's eval transform: ToTensor, bicubic resize of the longest side to `size` on the tensor
    (antialiased), zero padding to a centred square, then OpenAI normalisation. Unlike hpsv2 it also pads a
    non-square image whose longest side is already `size`, and it drops an alpha channel."""
    tensor = preprocess.resize_longest_and_pad(TF.to_tensor(to_rgb(image))[None], size)[0]
    return TF.normalize(tensor, OPENAI_MEAN, OPENAI_STD)


def resize_shortest_and_crop(image: Image.Image, size: int) -> torch.Tensor:
    """OpenAI CLIP's eval transform: bicubic resize of the shortest side on PIL, centre crop, normalise."""
    image = TF.resize(to_rgb(image), size, InterpolationMode.BICUBIC)
    image = TF.center_crop(image, [size, size])
    return TF.normalize(TF.to_tensor(image), OPENAI_MEAN, OPENAI_STD)


def encode_images(model, images: Sequence[Image.Image], transform, device, dtype) -> torch.Tensor:
    batch = torch.stack([transform(image, image_size(model)) for image in images]).to(device=device, dtype=dtype)
    return model.encode_image(batch, normalize=True).float()


def encode_pixels(model, batch: torch.Tensor, resize: Callable[[torch.Tensor, int], torch.Tensor],
                  dtype: torch.dtype) -> torch.Tensor:
    """Normalised image embeddings (float32) of pixels [B, 3, H, W] in [0, 1] on the model's device, resized by
    `resize` (a `preprocess` transform, the twin of a PIL one above); differentiable w.r.t. `batch`."""
    resized = resize(batch, image_size(model))
    return model.encode_image(preprocess.normalize(resized, OPENAI_MEAN, OPENAI_STD).to(dtype), normalize=True).float()


def text_image_similarity(model, tokenizer, batch: torch.Tensor, prompts: Sequence[str],
                          resize: Callable[[torch.Tensor, int], torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """[B] cos(image, prompt) of pixels [B, 3, H, W]; differentiable with respect to the pixels only."""
    image_emb = encode_pixels(model, batch, resize, dtype)
    with torch.no_grad():
        text_emb = encode_texts(model, tokenizer, prompts, batch.device)
    return (image_emb * text_emb).sum(-1)


def encode_texts(model, tokenizer, texts: Sequence[str], device) -> torch.Tensor:
    return model.encode_text(tokenizer(list(texts)).to(device), normalize=True).float()
