"""Loading diffusers pipelines from a hub id or a local folder, with one clear error when that fails."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from noise_exp.devices import DTYPES, resolve_device, resolve_dtype  # noqa: F401  (re-exported)
from noise_exp.errors import NoiseExpError
from noise_exp.files import DIR_MODE

log = logging.getLogger(__name__)

def _dtype_kwarg(torch_dtype: torch.dtype) -> dict[str, torch.dtype]:
    """diffusers >= 0.42 renamed `torch_dtype` to `dtype`; older releases only know the former."""
    import diffusers
    from packaging.version import Version

    return {"dtype" if Version(diffusers.__version__) >= Version("0.42") else "torch_dtype": torch_dtype}


def is_local_path(pretrained: str) -> bool:
    """A folder path (absolute, relative, ~, or existing) rather than a hub id."""
    return str(pretrained).startswith(("/", ".", "~")) or Path(os.path.expanduser(str(pretrained))).exists()


def load_pipeline(
    pipeline_cls: type,
    pretrained: str,
    torch_dtype: torch.dtype,
    variant: str | None = None,
    builder: Callable[[Path], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """`pipeline_cls.from_pretrained` on a local folder or hub id; build tiny models on first use.

    A local folder that is missing is built by `builder` when one is configured (tiny test models),
    otherwise the error names the folder and the config key to fix.
    """
    path = Path(os.path.expanduser(str(pretrained)))
    if is_local_path(pretrained):
        if not (path / "model_index.json").exists():
            if builder is None:
                raise NoiseExpError(
                    f"model folder {path} does not exist or is not a diffusers pipeline (no model_index.json); "
                    f"set model.pretrained to a local diffusers folder or a hub id")
            log.info("building %s (first use)", path)
            builder(path)
        return pipeline_cls.from_pretrained(str(path), local_files_only=True, **_dtype_kwarg(torch_dtype), **kwargs)
    try:
        try:
            return pipeline_cls.from_pretrained(pretrained, variant=variant, **_dtype_kwarg(torch_dtype), **kwargs)
        except ValueError:
            if variant is None:
                raise
            return pipeline_cls.from_pretrained(pretrained, **_dtype_kwarg(torch_dtype), **kwargs)
    except (OSError, ValueError, EnvironmentError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        reason = "HF_HUB_OFFLINE is set" if offline else "the hub is unreachable or the id is wrong"
        raise NoiseExpError(
            f"could not load model {pretrained!r}: not in the local Hugging Face cache and {reason} "
            f"({type(err).__name__}). Download it on a machine with access (`hf download {pretrained}`) "
            f"or point model.pretrained=/path/to/a/local/diffusers/folder") from err


def load_component(component_cls: type, pretrained: str, torch_dtype: torch.dtype) -> Any:
    """Load one model component (e.g. the fp16-fix SDXL VAE) with the same error handling as pipelines."""
    try:
        return component_cls.from_pretrained(pretrained, **_dtype_kwarg(torch_dtype))
    except (OSError, ValueError) as err:
        raise NoiseExpError(f"could not load {component_cls.__name__} {pretrained!r} ({type(err).__name__}); "
                            f"download it or point the config at a local folder") from err


def save_pipeline_atomically(pipe: Any, out_dir: Path, extra_files: dict[str, str] | None = None) -> Path:
    """`save_pretrained` into a temporary sibling, then one rename: concurrent jobs never see half a model.

    When another job won the race, its complete folder is kept and this copy is dropped.
    """
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    tmp.chmod(DIR_MODE)  # mkdtemp makes 0700: give the model folder the user's usual permissions
    try:
        pipe.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
