"""Content hashes of weights: a model folder, one weights file, or a hub id's cached commit. Run fingerprints,
candidate-bank scopes and evaluators' weight identities all use these, so the same weights get the same name."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from noise_exp.errors import NoiseExpError

_HEAD_BYTES = 1 << 20  # large weight files are identified by size and their first and last MiB


def weights_identity(pretrained: str) -> str:
    """A content hash of a local model folder, or `hub:<id>@<commit>` for a hub id found in the local cache."""
    path = Path(os.path.expanduser(pretrained))
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            _hash_file(digest, file, str(file.relative_to(path)))
        return "sha256:" + digest.hexdigest()[:16]
    if path.is_file():
        raise NoiseExpError(f"model.pretrained={pretrained} is a file; give a diffusers folder or a hub id")
    return f"hub:{pretrained}@{_hub_commit(pretrained) or 'unresolved'}"


def file_identity(path: Path) -> str:
    """A content hash of one weights file (its size and first and last MiB, like `weights_identity`'s files)."""
    digest = hashlib.sha256()
    _hash_file(digest, Path(path), "")
    return "sha256:" + digest.hexdigest()[:16]


def _hash_file(digest: Any, file: Path, name: str) -> None:
    size = file.stat().st_size
    digest.update(f"{name}:{size}:".encode())
    with open(file, "rb") as handle:
        digest.update(handle.read(_HEAD_BYTES))
        if size > 2 * _HEAD_BYTES:
            handle.seek(-_HEAD_BYTES, os.SEEK_END)
            digest.update(handle.read())
        elif size > _HEAD_BYTES:
            digest.update(handle.read())


def _hub_commit(repo_id: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "model_index.json")
    except Exception:  # an id the cache helper rejects: identified by its name only
        return None
    if isinstance(cached, str) and "/snapshots/" in cached:
        return cached.split("/snapshots/")[1].split("/")[0]
    return None
