"""A run folder's fingerprint: the settings that determine its results, recorded once, checked on every resume.

`run.json` in the run folder holds the flat result-determining settings (see `noise_exp.settings`) of the run that
made the folder, with the identity of the model's weights. A resume whose settings differ stops with one line that
names the differing keys, instead of mixing two experiments in one results.csv.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes
from noise_exp.hashing import file_identity, weights_identity
from noise_exp.models.loading import is_local_path
from noise_exp.settings import differing, flatten, is_result_key

RUN_FILE = "run.json"
WEIGHTS_KEY = "model.weights"


@dataclass
class RunFingerprint:
    """The result-determining settings of a run, flat (`model.num_steps` -> 4)."""

    settings: dict[str, Any]
    hydra: dict[str, str] = field(default_factory=dict)  # the creating run's .hydra/*.yaml, restored on refusal

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def differences(self, other: "RunFingerprint") -> dict[str, tuple[Any, Any]]:
        """Keys whose values differ (a key missing on one side shows as `<unset>`)."""
        return differing(self.settings, other.settings)


def run_fingerprint(cfg: DictConfig | Mapping[str, Any]) -> RunFingerprint:
    """The result-determining settings of a composed config, without the weights' identity (see `with_weights`).

    `model.pretrained` and `dataset.path` are kept by name only (the weights are identified by content, the
    prompts by their texts in each record), so moving a project or a cache folder does not change the fingerprint.
    """
    container = cfg if isinstance(cfg, Mapping) and not isinstance(cfg, DictConfig) else \
        OmegaConf.to_container(cfg, resolve=True)
    flat = {k: v for k, v in flatten({k: v for k, v in container.items() if k != "hydra"}).items() if is_result_key(k)}
    for key in ("model.pretrained", "dataset.path"):
        if flat.get(key):
            flat[key] = Path(str(flat[key])).name if is_local_path(str(flat[key])) else str(flat[key])
    if "model.dtype" in flat:
        flat["model.dtype"] = _resolved_dtype(container.get("model") or {})
    if str(flat.get("method.proxy") or "").startswith(PRIOR_PREFIX):
        flat["method.proxy"] = prior_identity(str(flat["method.proxy"]))
    return RunFingerprint(settings=flat)


PRIOR_PREFIX = "prior:"


def prior_identity(proxy: str) -> str:
    """`prior:<file>` as `prior:<file name>@sha256:...`: a seed prior rewritten in place changes a run's settings,
    a prior moved to another folder does not (like the model's weights)."""
    path = Path(os.path.expanduser(proxy[len(PRIOR_PREFIX):]))
    return f"{PRIOR_PREFIX}{path.name}@{file_identity(path)}" if path.is_file() else proxy


def with_weights(fingerprint: RunFingerprint, pretrained: str | None) -> RunFingerprint:
    """The fingerprint with the weights' identity of `pretrained` (a local folder or a hub id) added."""
    if not pretrained:
        return fingerprint
    return RunFingerprint({**fingerprint.settings, WEIGHTS_KEY: weights_identity(str(pretrained))}, fingerprint.hydra)


def _resolved_dtype(model: Mapping[str, Any]) -> str:
    from noise_exp.devices import resolve_device, resolve_dtype

    try:
        return str(resolve_dtype(str(model.get("dtype", "auto")), resolve_device(str(model.get("device", "auto")))))
    except NoiseExpError:
        return str(model.get("dtype"))


# --- run.json ---------------------------------------------------------------------------------------------

def read_fingerprint(run_dir: Path) -> RunFingerprint | None:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return RunFingerprint(settings=dict(data["settings"]), hydra=dict(data.get("hydra") or {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise NoiseExpError(f"{path} is corrupt; it records the settings of this run folder: restore it or start "
                            f"a new folder (hydra.run.dir=...)") from None


def write_fingerprint(run_dir: Path, fingerprint: RunFingerprint) -> None:
    """Record the settings (and a copy of Hydra's config files, to restore them if a later run is refused)."""
    run_dir = Path(run_dir)
    fingerprint.hydra = hydra_files(run_dir)
    data = {"digest": fingerprint.digest, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "settings": fingerprint.settings, "hydra": fingerprint.hydra}
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(data, indent=1, default=str).encode("utf-8"))


def hydra_files(run_dir: Path) -> dict[str, str]:
    """The texts of the run folder's .hydra/*.yaml (the config Hydra wrote for the current run)."""
    return {p.name: p.read_text() for p in sorted((Path(run_dir) / ".hydra").glob("*.yaml"))}


def restore_hydra_files(run_dir: Path, recorded: RunFingerprint) -> None:
    """Put back the .hydra/ files of the run that made the folder (Hydra rewrote them before the task started)."""
    for name, text in recorded.hydra.items():
        atomic_write_bytes(Path(run_dir) / ".hydra" / name, text.encode("utf-8"))


def check_fingerprint(run_dir: Path, current: RunFingerprint, recorded: RunFingerprint) -> None:
    """Refuse (one line naming the differing keys) when `current` differs from the folder's recorded settings."""
    differences = recorded.differences(current)
    if not differences:
        return
    restore_hydra_files(run_dir, recorded)
    raise NoiseExpError(f"{run_dir} holds results of other settings ({describe_differences(differences)}); rerun "
                        f"with the folder's settings to resume, or write to a new folder (hydra.run.dir=...)")


def describe_differences(differences: Mapping[str, tuple[Any, Any]], shown: int = 6) -> str:
    """`key: old -> new; ...`; a group whose `_target_` changed (another method or model) is one entry."""
    swapped = {key.rsplit(".", 1)[0] for key in differences if key.endswith("._target_")}
    parts = []
    for key, (old, new) in differences.items():
        group = key.rsplit(".", 1)[0] if "." in key else ""
        if group in swapped:
            if key.endswith("._target_"):
                parts.append(f"{group}: {_class_name(old)} -> {_class_name(new)}")
            continue
        parts.append(f"{key}: {old!r} -> {new!r}")
    more = f" (+{len(parts) - shown} more)" if len(parts) > shown else ""
    return "; ".join(parts[:shown]) + more


def _class_name(target: Any) -> str:
    """`noise_exp.models.StableDiffusionModel.from_pretrained` -> `StableDiffusionModel`."""
    parts = str(target).split(".")
    return parts[-2] if len(parts) > 1 and parts[-1][:1].islower() else parts[-1]
