"""The run's method declaration (`method.json`): its variants (report order, labels) and comparisons, recorded
so that reports and the human-eval page read them without importing the method."""
from __future__ import annotations

from pathlib import Path

from noise_exp.errors import NoiseExpError
from noise_exp.files import atomic_write_bytes
from noise_exp.methods.declaration import Declaration
from noise_exp.methods.method import Method

METHOD_FILE = "method.json"  # the method's declaration: its variants (report order, labels) and comparisons


def write_declaration(run_dir: Path, declaration: Declaration) -> None:
    """Record what the run's method declares, so that reports read it without importing the method."""
    atomic_write_bytes(Path(run_dir) / METHOD_FILE, declaration.to_json().encode())


def read_declaration(run_dir: Path) -> Declaration | None:
    """The run's method declaration: method.json, else the class its `.hydra/config.yaml` names (folders written
    before method.json existed), else None (a synthetic run, a bank query's folder from before method.json)."""
    path = Path(run_dir) / METHOD_FILE
    if path.is_file():
        try:
            return Declaration.from_json(path.read_text())
        except (ValueError, KeyError, TypeError) as err:
            raise NoiseExpError(f"{path} is not a method declaration ({err}); delete it to read the run's "
                                f".hydra config instead") from None
    config = Path(run_dir) / ".hydra" / "config.yaml"
    if not config.is_file():
        return None
    import yaml
    from hydra.utils import get_class

    try:
        target = ((yaml.safe_load(config.read_text()) or {}).get("method") or {}).get("_target_")
        cls = get_class(target) if isinstance(target, str) else None
    except (ImportError, AttributeError, ValueError, yaml.YAMLError):
        return None
    return cls.declaration() if isinstance(cls, type) and issubclass(cls, Method) else None
