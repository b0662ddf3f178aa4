"""The candidate key: which model and sampler drew a candidate, for which prompt text, from which seed.

A candidate's numbers depend on the model's weights (by content), its dtype and every other result-determining
`model.*` setting (T, timestep spacing, guidance while denoising and while inverting, image size, adapter, VAE, ...:
the policy of `noise_exp.settings`), on the prompt text and on the seed, and on nothing else. The *scope* is the
model and sampler part; the key digest adds prompt and seed. Candidates of another scope are never read as this
scope's: a bank may hold several scopes side by side.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from noise_exp.errors import NoiseExpError
from noise_exp.settings import differing

MODEL_PREFIX = "model."
WEIGHTS = "weights"
# shown first when a scope is described (the key); every other model setting follows
NAMED_FIELDS = ("weights", "dtype", "num_steps", "timestep_spacing", "guidance_scale", "inversion_guidance_scale",
                "height", "width")


def _canonical(value: Any) -> Any:
    """3 and 3.0 are one guidance scale (an override gives an int, a YAML file a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return int(value) if float(value).is_integer() else float(value)


@dataclass
class BankScope:
    """The model and sampler settings a candidate depends on, flat and without the `model.` prefix; `weights` is
    the content identity of the weights (`noise_exp.hashing.weights_identity`), never a folder name."""

    settings: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.settings.get(WEIGHTS):
            raise NoiseExpError("the candidate bank needs the model's weights identity (model.pretrained): "
                                "candidates of unidentified weights could be mixed with another model's")
        self.settings = {k: _canonical(v) for k, v in sorted(self.settings.items())}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "BankScope":
        """The scope of a run's flat result-determining settings (run.json's, with `model.weights`)."""
        return cls({key[len(MODEL_PREFIX):]: value for key, value in settings.items()
                    if key.startswith(MODEL_PREFIX) and key != "model.pretrained"})

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(self.settings, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "BankScope":
        return cls(dict(json.loads(text)))

    def describe(self) -> str:
        """`weights=sha256:… dtype=torch.float32 num_steps=10 …` (the named fields first)."""
        names = [n for n in NAMED_FIELDS if n in self.settings] + [n for n in self.settings if n not in NAMED_FIELDS]
        return " ".join(f"{name}={self.settings[name]}" for name in names)

    def differences(self, other: "BankScope") -> str:
        """`num_steps: 10 vs 4; guidance_scale: 1 vs 3` for the settings that differ."""
        return "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in differing(self.settings, other.settings).items())


def candidate_key(scope_digest: str, prompt: str, seed: int) -> str:
    """The content address of one candidate: its scope, prompt text and seed."""
    payload = json.dumps([scope_digest, prompt, int(seed)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]
