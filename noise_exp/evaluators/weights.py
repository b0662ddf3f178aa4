"""Where scorer weights come from, and the per-process model cache.

Every weight is either a local path set in the evaluator's config or an official remote source. Remote
sources are only tried when the hub may be reachable; offline (HF_HUB_OFFLINE=1, or no network) a missing
weight raises `NoiseExpError` naming the weight and the config key that points at a local copy. Nothing
waits on the network for more than `DOWNLOAD_TIMEOUT_S` seconds.
"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Callable, Hashable, TypeVar
from urllib.parse import urlparse

from noise_exp.errors import NoiseExpError

T = TypeVar("T")
DOWNLOAD_TIMEOUT_S = 10.0

_CACHE: dict[Hashable, object] = {}
_LOCK = threading.RLock()  # re-entrant: a loader may itself use `cached` (e.g. a scorer fitted on cached data)


def cached(key: Hashable, load: Callable[[], T]) -> T:
    """Load a model once per process; later calls with the same key return the same object."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load()
        return _CACHE[key]  # type: ignore[return-value]


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def host_reachable(url: str, timeout: float = 3.0) -> bool:
    """A quick TCP check, so that an offline machine fails in seconds instead of retrying downloads."""
    host = urlparse(url).hostname or url
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _missing(weight: str, config_key: str, detail: str = "") -> NoiseExpError:
    extra = f" ({detail})" if detail else ""
    return NoiseExpError(f"weights for {weight} are not available offline{extra}: download them and set "
                         f"{config_key}=<local path>")


def local_path(path: str | os.PathLike | None, weight: str, config_key: str) -> Path | None:
    """A configured local path, checked; `None` when the config leaves it unset."""
    if path in (None, ""):
        return None
    resolved = Path(os.path.expanduser(str(path)))
    if not resolved.exists():
        raise NoiseExpError(f"{config_key}={path} does not exist (weights for {weight})")
    return resolved


def hub_file(repo_id: str, filename: str, weight: str, config_key: str) -> Path:
    """A file from the Hugging Face hub: the local cache first, then a download if the hub is reachable."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except Exception:
        pass
    if hub_offline() or not host_reachable("https://huggingface.co"):
        raise _missing(weight, config_key, f"hf://{repo_id}/{filename} is not in the local cache")
    try:
        return Path(hf_hub_download(repo_id, filename, etag_timeout=DOWNLOAD_TIMEOUT_S))
    except Exception as error:  # network, auth, missing file: all user-fixable
        raise _missing(weight, config_key, f"download of hf://{repo_id}/{filename} failed: {type(error).__name__}")


def hub_snapshot(repo_id: str, weight: str, config_key: str) -> Path:
    """A whole hub repository folder (for `from_pretrained` models), cache first."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        pass
    if hub_offline() or not host_reachable("https://huggingface.co"):
        raise _missing(weight, config_key, f"hf://{repo_id} is not in the local cache")
    try:
        return Path(snapshot_download(repo_id, etag_timeout=DOWNLOAD_TIMEOUT_S,
                                      allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model"]))
    except Exception as error:
        raise _missing(weight, config_key, f"download of hf://{repo_id} failed: {type(error).__name__}")


def url_file(url: str, weight: str, config_key: str) -> Path:
    """A file from a plain URL (e.g. a GitHub release), cached under torch's hub folder."""
    import torch.hub

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name.replace("%2B", "+")
    if target.exists():
        return target
    if hub_offline() or not host_reachable(url):
        raise _missing(weight, config_key, f"{url} is not cached at {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as error:
        raise _missing(weight, config_key, f"download of {url} failed: {type(error).__name__}")
    finally:
        socket.setdefaulttimeout(None)
    return target


def first_line(error: BaseException, limit: int = 160) -> str:
    """`Type: first sentence of its message`, at most `limit` characters (torch's messages go on with advice)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0].split('. ')[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The state dict in a weights file: .safetensors, or a torch.save'd .pt/.pth/.bin loaded weights-only, also
    when wrapped as `{'state_dict': ...}`. A file that cannot be read raises one line naming it."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download, an HTML error page, another format: re-download it
        raise NoiseExpError(f"cannot read evaluator weights {path}: file is corrupt or not a checkpoint "
                            f"({first_line(error)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        found = "an empty dict" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise NoiseExpError(f"cannot read evaluator weights {path}: it holds {found}, not a state dict")
    return state


def resolve(path: str | os.PathLike | None, *, weight: str, config_key: str,
            hub: tuple[str, str] | None = None, url: str | None = None) -> Path:
    """The configured local path if set, else the official source (hub repo+file, or URL)."""
    local = local_path(path, weight, config_key)
    if local is not None:
        return local
    if hub is not None:
        return hub_file(hub[0], hub[1], weight, config_key)
    if url is not None:
        return url_file(url, weight, config_key)
    raise _missing(weight, config_key)


def resolve_dir(path_or_repo: str, *, weight: str, config_key: str) -> Path:
    """A `from_pretrained` folder: a local directory, or a hub repository id."""
    candidate = Path(os.path.expanduser(path_or_repo))
    if candidate.is_dir():
        return candidate
    if candidate.is_absolute() or path_or_repo.startswith((".", "~")) or path_or_repo.count("/") > 1:
        raise NoiseExpError(f"{config_key}={path_or_repo} is neither a local folder nor a hub repository id "
                            f"(weights for {weight})")
    return hub_snapshot(path_or_repo, weight, config_key)
