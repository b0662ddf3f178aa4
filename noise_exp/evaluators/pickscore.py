"""PickScore (Kirstain et al., 2023): a CLIP-H fine-tuned on Pick-a-Pic preferences.

score = logit_scale.exp() * cos(text_emb, image_emb), model `yuvalkirstain/PickScore_v1`, processor
`laion/CLIP-ViT-H-14-laion2B-s32B-b79K`. The processor is loaded with the PIL backend: transformers 5's
default torchvision backend shifts pixels by up to 0.015 against the 4.x processor PickScore was made with.
In transformers 5 `get_image_features`/`get_text_features` return an output object, in 4.x a tensor.
`score_pixels` reads the processor's settings and does its resize (Pillow's bicubic), crop and normalisation in
torch (`noise_exp.evaluators.preprocess`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image

from noise_exp.errors import NoiseExpError
from noise_exp.evaluators import preprocess
from noise_exp.evaluators.base import Evaluator, to_rgb
from noise_exp.evaluators.weights import cached, first_line, read_checkpoint, resolve_dir


def projected(output) -> torch.Tensor:
    """The projected embedding from `get_*_features`, whichever transformers major version returned it."""
    if isinstance(output, torch.Tensor):
        return output
    if getattr(output, "pooler_output", None) is not None:
        return output.pooler_output
    return output[1]


def load_processor(path):
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path, backend="pil")
    except TypeError:  # transformers 4.x: the PIL path is the only one
        return AutoProcessor.from_pretrained(path)


@dataclass(frozen=True)
class ProcessorGeometry:
    """What a CLIP image processor does to an image, for the tensor path: shortest side to `shortest_edge`
    (bicubic), centre crop of `crop`, x / 255, (x - mean) / std."""

    shortest_edge: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def processor_geometry(image_processor) -> ProcessorGeometry:
    """The processor's settings, or one line naming the one that `score_pixels` does not reproduce."""
    def setting(size, key):
        return size.get(key) if isinstance(size, dict) else getattr(size, key, None)

    shortest = setting(image_processor.size, "shortest_edge")
    crop = (setting(image_processor.crop_size, "height"), setting(image_processor.crop_size, "width"))
    expected = {"do_resize": True, "do_center_crop": True, "do_rescale": True, "do_normalize": True,
                "resample": 3, "rescale_factor": 1 / 255}
    unsupported = [f"{key}={getattr(image_processor, key, None)}" for key, value in expected.items()
                   if getattr(image_processor, key, None) != value]
    if shortest is None or crop[0] != crop[1] or crop[0] is None:
        unsupported.append(f"size={image_processor.size}, crop_size={image_processor.crop_size}")
    if unsupported:
        raise NoiseExpError(f"pickscore.score_pixels reproduces a CLIP processor that resizes the shortest side "
                            f"(bicubic), centre-crops a square, rescales by 1/255 and normalises; this one has "
                            f"{', '.join(unsupported)}")
    return ProcessorGeometry(int(shortest), int(crop[0]), tuple(image_processor.image_mean),
                             tuple(image_processor.image_std))


def unit(embedding: torch.Tensor) -> torch.Tensor:
    embedding = embedding.float()
    return embedding / embedding.norm(dim=-1, keepdim=True)


class PickScore(Evaluator):
    name = "pickscore"
    needs_prompts = True
    differentiable = True

    def __init__(self, model: str = "yuvalkirstain/PickScore_v1",
                 processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                 device: str | None = None, dtype: str = "float32", batch_size: int = 16):
        super().__init__(device, dtype, batch_size)
        self.model_source, self.processor_source = model, processor

    def _load(self):
        from transformers import AutoModel

        model_dir = resolve_dir(self.model_source, weight="PickScore_v1", config_key="evaluator.pickscore.model")
        processor_dir = resolve_dir(self.processor_source, weight="the CLIP-ViT-H-14 processor",
                                    config_key="evaluator.pickscore.processor")

        def load():
            try:
                model = AutoModel.from_pretrained(model_dir, local_files_only=True, dtype=self.dtype)
                processor = load_processor(processor_dir)
            except Exception as error:
                for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
                    read_checkpoint(weights)  # a corrupt file raises its own error, naming it
                raise NoiseExpError(f"cannot load PickScore from {model_dir} / {processor_dir}: "
                                    f"{first_line(error)}") from None
            return model.to(self.device).eval().requires_grad_(False), processor

        return cached(("pickscore", str(model_dir), str(processor_dir), str(self.device), self.dtype), load)

    def _text_features(self, model, processor, prompts: Sequence[str]) -> torch.Tensor:
        tokens = processor(text=list(prompts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        with torch.no_grad():
            return unit(projected(model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                          attention_mask=tokens["attention_mask"].to(self.device))))

    def _image_features(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        return unit(projected(model.get_image_features(pixel_values=pixel_values.to(self.device, self.dtype))))

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        model, processor = self.load()
        scores = []
        for start in range(0, len(images), self.batch_size):
            end = start + self.batch_size
            pixels = processor(images=[to_rgb(image) for image in images[start:end]], return_tensors="pt")
            image_emb = self._image_features(model, pixels["pixel_values"])
            text_emb = self._text_features(model, processor, prompts[start:end])
            scores.append(model.logit_scale.exp().float() * (image_emb * text_emb).sum(-1))
        return torch.cat(scores).cpu().float() if scores else torch.zeros(0)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        batch = self._model_pixels(pixels, prompts)
        model, processor = self.load()
        geometry = processor_geometry(processor.image_processor)
        resized = preprocess.resize_shortest_and_crop(batch, geometry.shortest_edge, geometry.crop,
                                                      offsets="transformers")
        image_emb = self._image_features(model, preprocess.normalize(resized, geometry.mean, geometry.std))
        text_emb = self._text_features(model, processor, prompts)
        return (model.logit_scale.exp().float() * (image_emb * text_emb).sum(-1)).to(pixels.device)
