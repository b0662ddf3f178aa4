"""Test fixtures: tiny random-weight checkpoints of every scorer in the official formats, for offline tests.

Each builder writes the same kind of files the real weights come as (an open_clip `{'state_dict': ...}`
checkpoint for HPS, a plain state dict for the aesthetic MLP, a `save_pretrained` folder for PickScore, a
state dict + med_config.json + BERT vocab for ImageReward), so tests load them through the scorers' real
loading code. Builders are deterministic (fixed seeds) and skip files that already exist in `folder`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_CLIP = "TinyCLIP-noise-exp"


def tiny_open_clip_config(folder: Path, embed_dim: int = 32, name: str = TINY_CLIP) -> Path:
    """An open_clip model config: ViT with one layer, patch 32 at 224 px, the real 49408-token vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    config = {"embed_dim": embed_dim,
              "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32, "head_width": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}
    path.write_text(json.dumps(config))
    return path


def _open_clip_state(config: Path, seed: int) -> dict[str, torch.Tensor]:
    import open_clip

    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model(config.stem, pretrained=None)
    return model.state_dict()


def tiny_hps(folder: Path) -> tuple[Path, Path]:
    """(model config JSON, checkpoint) in HPS's format: `torch.save({'state_dict': open_clip state})`."""
    config = tiny_open_clip_config(folder / "open_clip")
    checkpoint = folder / "HPS_v2_compressed.pt"
    if not checkpoint.exists():
        torch.save({"state_dict": _open_clip_state(config, seed=0)}, checkpoint)
    return config, checkpoint


def tiny_aes(folder: Path) -> tuple[Path, Path, Path]:
    """(CLIP config JSON, CLIP state dict as open_clip_pytorch_model.bin, MLP state dict as the predictor's .pth).

    The MLP is initialised with std 1 / sqrt(fan_in) instead of the predictor's training init, so that the
    random head is not near-constant."""
    from noise_exp.evaluators.aes import AestheticMLP

    config = tiny_open_clip_config(folder / "open_clip")
    clip_path = folder / "open_clip_pytorch_model.bin"
    mlp_path = folder / "sac+logos+ava1-l14-linearMSE.pth"
    if not clip_path.exists():
        torch.save(_open_clip_state(config, seed=1), clip_path)
    if not mlp_path.exists():
        torch.manual_seed(2)
        mlp = AestheticMLP(json.loads(config.read_text())["embed_dim"])
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)
                torch.nn.init.normal_(layer.bias, std=0.1)
        torch.save(mlp.state_dict(), mlp_path)
    return config, clip_path, mlp_path


def tiny_pickscore(folder: Path) -> tuple[Path, Path]:
    """(model folder, processor folder), both `save_pretrained` folders like the hub repositories."""
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer)

    model_dir, processor_dir = folder / "PickScore_v1", folder / "CLIP-ViT-H-14-processor"
    if not (model_dir / "config.json").exists():
        torch.manual_seed(3)
        text = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1,
                    vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                    pad_token_id=1)
        vision = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1,
                      image_size=224, patch_size=32)
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(model_dir)
    if not (processor_dir / "preprocessor_config.json").exists():
        from noise_exp.builders.tokenizers import write_clip_tokenizer

        vocab, merges = write_clip_tokenizer(folder / "clip_bpe")
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
        image_processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                             do_center_crop=True, do_normalize=True, do_resize=True,
                                             image_mean=[0.48145466, 0.4578275, 0.40821073],
                                             image_std=[0.26862954, 0.26130258, 0.27577711], resample=3)
        CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(processor_dir)
    return model_dir, processor_dir


@dataclass(frozen=True)
class TinyImageReward:
    checkpoint: Path
    med_config: Path
    tokenizer: Path
    vision: dict


TINY_IR_VISION = {"embed_dim": 64, "depth": 1, "num_heads": 2, "patch_size": 32, "image_size": 224}


def write_bert_vocab(folder: Path) -> Path:
    """A small WordPiece vocabulary with BERT's special tokens at their usual ids."""
    folder.mkdir(parents=True, exist_ok=True)
    words = (["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
             + list("abcdefghijklmnopqrstuvwxyz0123456789")
             + ["a", "photo", "of", "the", "cat", "dog", "red", "blue", "green", "car", "tree", "house", "on",
                "in", "and", "with", "painting", "##s", "##ing", "##ed"])
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(words)) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return folder


def reference_wheel(distribution: str, folder: Path) -> Path | None:
    """Unpack an official scorer wheel (e.g. `hpsv2`, `image_reward`) for reference tests, without installing it.

    Wheels are looked for in $NOISE_EXP_REFERENCE_WHEELS, then `.cache/reference/` (fill it with
    `make reference-wheels`). The official packages pin old protobuf/pytest/timm/transformers, so they are never
    installed into the environment; tests import them from the unpacked folder. Returns the folder to put on
    sys.path, or None when no wheel is present."""
    import os
    import zipfile

    roots = [Path(p) for p in os.environ.get("NOISE_EXP_REFERENCE_WHEELS", "").split(os.pathsep) if p]
    roots.append(Path(__file__).resolve().parents[2] / ".cache" / "reference")
    for root in roots:
        wheels = sorted(root.glob(f"{distribution}-*.whl"))
        if wheels:
            target = folder / wheels[-1].stem
            if not target.exists():
                with zipfile.ZipFile(wheels[-1]) as archive:
                    archive.extractall(target)
            return target
    return None


def tiny_imagereward(folder: Path) -> TinyImageReward:
    """A tiny ImageReward in the official formats: a state dict with the official key names (including the
    unused `vision_proj`/`text_proj`/`position_ids`), `med_config.json`, and a BERT vocab folder. BERT keeps hidden size 768
    because the official code hard-codes `MLP(768)`; one layer, tiny ViT (TINY_IR_VISION)."""
    from noise_exp.evaluators.aes import AestheticMLP
    from noise_exp.evaluators.imagereward import ImageRewardModel, TextEncoder, VisionTransformer, load_tokenizer

    tokenizer_dir = write_bert_vocab(folder / "bert-base-uncased")
    med_path, checkpoint = folder / "med_config.json", folder / "ImageReward.pt"
    med = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
           "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 256,
           "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
           "num_hidden_layers": 1, "pad_token_id": 0, "type_vocab_size": 2,
           "vocab_size": len(load_tokenizer(tokenizer_dir)), "encoder_width": TINY_IR_VISION["embed_dim"],
           "add_cross_attention": True}
    if not checkpoint.exists():
        torch.manual_seed(5)
        v = TINY_IR_VISION
        vision = VisionTransformer(v["image_size"], v["patch_size"], v["embed_dim"], v["depth"], v["num_heads"],
                                   4 * v["embed_dim"])
        torch.nn.init.normal_(vision.pos_embed, std=0.02)
        torch.nn.init.normal_(vision.cls_token, std=0.02)
        mlp = AestheticMLP(768)
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)
        model = ImageRewardModel(vision, TextEncoder(med, med["vocab_size"], v["embed_dim"]), mlp)
        state = model.state_dict()
        state["blip.vision_proj.weight"] = torch.randn(256, v["embed_dim"]) * 0.02
        state["blip.vision_proj.bias"] = torch.zeros(256)
        state["blip.text_proj.weight"] = torch.randn(256, 768) * 0.02
        state["blip.text_proj.bias"] = torch.zeros(256)
        state["blip.text_encoder.embeddings.position_ids"] = torch.arange(med["max_position_embeddings"])[None]
        torch.save(state, checkpoint)
    med_path.write_text(json.dumps(med))
    return TinyImageReward(checkpoint, med_path, tokenizer_dir, dict(TINY_IR_VISION))


def tiny_differentiable_scorers(folder: Path, device: str = "cpu") -> dict:
    """HPSv2, AES, CLIP-S, PickScore and ImageReward on the tiny checkpoints above, built through their real loading
    code, keyed by evaluator name (the scorers with `score_pixels`, except shapes_reward, which has real weights)."""
    from noise_exp.evaluators.aes import AES
    from noise_exp.evaluators.clip_score import CLIPScore
    from noise_exp.evaluators.hpsv2 import HPSv2
    from noise_exp.evaluators.imagereward import ImageReward
    from noise_exp.evaluators.pickscore import PickScore

    hps_config, hps_checkpoint = tiny_hps(folder)
    clip_config, clip_path, mlp_path = tiny_aes(folder)
    model_dir, processor_dir = tiny_pickscore(folder)
    reward = tiny_imagereward(folder)
    return {"hpsv2": HPSv2(checkpoint=str(hps_checkpoint), arch=str(hps_config), device=device),
            "aes": AES(mlp_checkpoint=str(mlp_path), clip_checkpoint=str(clip_path), clip_arch=str(clip_config),
                       device=device),
            "clip_s": CLIPScore(checkpoint=str(clip_path), arch=str(clip_config), hub_file=None, device=device),
            "pickscore": PickScore(model=str(model_dir), processor=str(processor_dir), device=device),
            "imagereward": ImageReward(checkpoint=str(reward.checkpoint), med_config=str(reward.med_config),
                                       tokenizer=str(reward.tokenizer), vision_heads=reward.vision["num_heads"],
                                       device=device)}


def assert_valid_scores(scores, n: int) -> None:
    """A scorer's output contract: a 1-D float32 tensor of n finite values."""
    assert isinstance(scores, torch.Tensor)
    assert scores.dtype == torch.float32 and scores.dim() == 1 and scores.shape[0] == n
    assert torch.isfinite(scores).all()
