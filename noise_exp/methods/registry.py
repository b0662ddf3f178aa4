"""Every method class, found from the `method` config group: the one place that knows which variants exist."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterable

import yaml

from noise_exp.config import CONF_DIR
from noise_exp.errors import NoiseExpError
from noise_exp.methods.declaration import Budget, Comparison, Declaration
from noise_exp.methods.method import REGISTRY, Method

METHOD_CONF = CONF_DIR / "method"


def import_targets(conf_dirs: Iterable[Path] = ()) -> None:
    """Import the `_target_` class of every method yaml (conf/method plus `conf_dirs`' method groups), which
    registers it."""
    for folder in (METHOD_CONF, *(Path(d) / "method" for d in conf_dirs)):
        for path in sorted(folder.glob("*.yaml")):
            target = (yaml.safe_load(path.read_text()) or {}).get("_target_")
            if isinstance(target, str) and "." in target:
                module, _, name = target.rpartition(".")
                getattr(importlib.import_module(module), name)


def method_classes() -> list[type[Method]]:
    """The registered method classes: the paper's first (`report_rank`), then the others by name."""
    import_targets()
    return sorted(REGISTRY.values(), key=lambda cls: (cls.report_rank, cls.name))


def known_variants() -> list[str]:
    """Every variant name a registered method declares, in report order."""
    return list(dict.fromkeys(spec.name for cls in method_classes() for spec in cls.variants))


def declared_comparisons() -> list[Comparison]:
    """Every registered method's comparisons, in registry order, each once."""
    return list(dict.fromkeys(c for cls in method_classes() for c in cls.comparisons))


def declared_pairs(declarations: Iterable[Declaration | None] = ()) -> list[tuple[str, str]]:
    """(A, B) of every registered method's comparisons (registry order), then of those only `declarations` make
    (a run folder's method.json of a method this process does not import)."""
    found = [*declared_comparisons(), *(c for d in declarations if d for c in d.comparisons)]
    return [c.pair for c in dict.fromkeys(found)]


def compare_classes() -> list[type[Method]]:
    """The methods of the equal-compute study (an `at_budget`): the declared baseline first, then registry order."""
    probe = Budget(1, 1, 1, 1, "verifier")
    joined = [cls for cls in method_classes() if cls.at_budget(probe) is not None]
    return sorted(joined, key=lambda cls: not cls.compare_baseline)


def compare_baseline() -> str:
    """The method the equal-compute study's win rates are against (the one that declares `compare_baseline`)."""
    found = [cls.name for cls in method_classes() if cls.compare_baseline]
    if len(found) != 1:
        raise NoiseExpError(f"the equal-compute study needs one method with compare_baseline = True, found {found}")
    return found[0]


def paper_classes() -> list[type[Method]]:
    """The paper's methods (`report_rank` set): how a folder that records no method (a bank query's, a synthetic
    run) is read."""
    return [cls for cls in method_classes() if cls.report_rank < 100]


def run_pairs(declaration: Declaration | None) -> list[tuple[str, str]]:
    """The comparisons of one run: its method's, or the paper's methods' for a folder that records none."""
    if declaration is not None:
        return [c.pair for c in declaration.comparisons]
    return [c.pair for c in dict.fromkeys(c for cls in paper_classes() for c in cls.comparisons)]


def variant_labels(paper: bool = False) -> dict[str, str]:
    """name -> report label over every registered method (one name has one label everywhere); `paper`: the
    paper's wording where it has one (Table 3)."""
    return {spec.name: (spec.paper_label or spec.label) if paper else spec.label
            for cls in reversed(method_classes()) for spec in cls.variants}
