"""A query's choices as a run folder (results.csv, per-prompt records, images, report) that `noise_exp.report`
compares like any other run; no candidate is recomputed.

Images: when every chosen candidate has an image in the bank (`method.score_candidates` kept them) those are
copied; otherwise only the chosen seeds are regenerated (draw_noise, one denoising pass, decode) with the model
the bank recorded, after checking its weights are the scope's. `images="none"` writes no images.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from noise_exp.bank.queries import CandidateSet, Choice, apply_rules, rule_declaration
from noise_exp.candidates.rules import Rule
from noise_exp.candidates.storage import SCORE_PREFIX, STABILITY_PREFIX
from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes, writable_folder

QUERY_FILE = "bank_query.json"
IMAGE_MODES = ("auto", "bank", "regenerate", "none")


def write_select_run(candidates: CandidateSet, rules: Sequence[Rule], out: Path, similarity: str = "cosine",
                     seed: int = 0, images: str = "auto") -> tuple[Path, str]:
    """Write the run folder; returns it and how its images were made (`bank`, `regenerated` or `none`)."""
    out = Path(out)
    check_out(out)
    choices = apply_rules(candidates, rules, seed)  # a rule the candidates cannot answer stops here, in a second
    pictures, made = _images(candidates, choices, images)
    from noise_exp.data.prompts import Prompt
    from noise_exp.methods.method import MethodOutput, Variant
    from noise_exp.report import write_report
    from noise_exp.rundir.declaration import write_declaration
    from noise_exp.rundir.store import RunStore

    _prepare(out)  # only now: a query that fails leaves no folder behind
    store = RunStore(out, save_noise=False)
    column = f"{STABILITY_PREFIX}{similarity}"
    for per_prompt in choices:
        prompt = per_prompt[0].prompt
        variants = [Variant(c.rule.variant, int(c.row["seed"]), float(c.row[column]), None, None, c.seconds,
                            int(round(c.nfe)), scores=_scores(c.row)) for c in per_prompt]
        selection = [(int(s), float(v)) for s, v in zip(prompt.frame["seed"], prompt.frame[column])]
        store.write_prompt(Prompt(prompt.prompt_id, prompt.prompt, prompt.dataset, prompt.meta),
                           MethodOutput(variants, selection_scores=selection),
                           {c.rule.variant: pictures[(prompt.prompt_id, c.rule.variant)] for c in per_prompt
                            if (prompt.prompt_id, c.rule.variant) in pictures})
    query = {"source": str(candidates.source), "bank": str(candidates.bank.path), "scope": candidates.scope.digest,
             "model": candidates.scope.settings, "rules": [r.variant for r in rules], "similarity": similarity,
             "k": int(len(candidates.prompts[0].frame)), "seed": seed, "images": made}
    atomic_write_bytes(out / QUERY_FILE, json.dumps(query, indent=1, default=str).encode("utf-8"))
    write_declaration(out, rule_declaration(rules))  # the report and the human-eval page read it like any run's
    write_report([out], out / "report")
    return out, made


def check_out(out: Path) -> None:
    """--out must be a new or empty folder, or an earlier query's folder (whose tables, records and images are
    replaced)."""
    writable_folder(out, "--out")
    if out.is_dir() and any(out.iterdir()) and not (out / QUERY_FILE).is_file():
        raise NoiseExpError(f"--out {out} exists and is not an earlier bank query's folder; choose a new folder")


def check_images(mode: str) -> None:
    if mode not in IMAGE_MODES:
        raise NoiseExpError(f"--images {mode}: choose one of {', '.join(IMAGE_MODES)}")


def _prepare(out: Path) -> None:
    """The output folder, emptied of an earlier query's records, images, report, declaration and metric directions."""
    (out / "method.json").unlink(missing_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)  # a `noise_exp.score` of the earlier query's images
    for name in ("prompts", "images", "report"):
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _scores(row: dict[str, Any]) -> dict[str, float]:
    return {name[len(SCORE_PREFIX):]: float(value) for name, value in row.items()
            if name.startswith(SCORE_PREFIX) and value == value}


def _images(candidates: CandidateSet, choices: list[list[Choice]], mode: str) -> tuple[dict, str]:
    check_images(mode)
    chosen = [c for per_prompt in choices for c in per_prompt]
    in_bank = all(isinstance(c.row.get("image"), str) and c.row["image"] for c in chosen)
    if mode == "none":
        return {}, "none"
    if mode == "bank" or (mode == "auto" and in_bank):
        if not in_bank:
            raise NoiseExpError("--images bank: some chosen candidates have no image in the bank (run with "
                                "method.score_candidates=true and bank.images=true)")
        return {(c.prompt.prompt_id, c.rule.variant): _open(candidates.bank.path / c.row["image"])
                for c in chosen}, "bank"
    return _regenerate(candidates, choices), "regenerated"


def _open(path: Path) -> Image.Image:
    from noise_exp.imaging import open_image

    with open_image(path) as image:
        return image.convert("RGB").copy()


def _regenerate(candidates: CandidateSet, choices: list[list[Choice]]) -> dict[tuple[int, str], Image.Image]:
    """Decode each prompt's chosen seeds with the scope's model: draw_noise, one denoising pass, decode."""
    import torch
    from hydra.utils import instantiate

    from noise_exp.config import upgrade_targets
    from noise_exp.data.prompts import Prompt
    from noise_exp.hashing import weights_identity

    config = upgrade_targets(candidates.model_config)
    if not config:
        raise NoiseExpError(f"the bank {candidates.bank.path} records no model config for scope "
                            f"{candidates.scope.digest}; use --images none")
    weights = weights_identity(str(config["pretrained"]))
    if weights != candidates.scope.settings["weights"]:
        raise NoiseExpError(f"the weights at {config['pretrained']} ({weights}) are not the bank's "
                            f"({candidates.scope.settings['weights']}); use --images none")
    model = instantiate(config)
    pictures = {}
    with torch.no_grad():
        for per_prompt in choices:
            prompt = per_prompt[0].prompt
            cond = model.condition(Prompt(prompt.prompt_id, prompt.prompt, prompt.dataset, prompt.meta))
            seeds = [int(c.row["seed"]) for c in per_prompt]
            decoded = model.decode(model.denoise(model.draw_noise(seeds), cond), cond)
            pictures.update({(prompt.prompt_id, c.rule.variant): image for c, image in zip(per_prompt, decoded)})
    return pictures
