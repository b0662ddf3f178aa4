"""PickScore (Kirstain et al., 2023): a CLIP-H fine-tuned on Pick-a-Pic preferences.

score = logit_scale.exp() * cos(text_emb, image_emb), model `yuvalkirstain/PickScore_v1`, processor
`laion/CLIP-ViT-H-14-laion2B-s32B-b79K`. The processor is loaded with the PIL backend: transformers 5's
default torchvision backend shifts pixels by up to 0.015 against the 4.x processor PickScore was made with.
In transformers 5 `get_image_features`/`get_text_features` return an output object, in 4.x a tensor.
"""
from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from evaluators.base import Evaluator, to_rgb
from evaluators.weights import cached, first_line, read_checkpoint, resolve_dir
from noise_exp.errors import NoiseExpError


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


class PickScore(Evaluator):
    name = "pickscore"
    needs_prompts = True

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

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        model, processor = self.load()
        scores = []
        for start in range(0, len(images), self.batch_size):
            end = start + self.batch_size
            pixels = processor(images=[to_rgb(image) for image in images[start:end]], return_tensors="pt")
            tokens = processor(text=list(prompts[start:end]), padding=True, truncation=True, max_length=77,
                               return_tensors="pt")
            image_emb = projected(model.get_image_features(
                pixel_values=pixels["pixel_values"].to(self.device, self.dtype))).float()
            text_emb = projected(model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device))).float()
            image_emb = image_emb / image_emb.norm(dim=-1, keepdim=True)
            text_emb = text_emb / text_emb.norm(dim=-1, keepdim=True)
            scores.append(model.logit_scale.exp().float() * (image_emb * text_emb).sum(-1))
        return torch.cat(scores).cpu().float() if scores else torch.zeros(0)
