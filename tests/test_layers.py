"""Imports run one way: `lint-imports` keeps pyproject.toml's layers contract, and its debt list only shrinks."""
from __future__ import annotations

import os
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

from tests.conftest import ROOT

# Upward imports allowed (pyproject.toml, ignore_imports): none since issue 21's steps S2-S5 moved the code that
# made them. An import that breaks the layers is fixed by moving code, not by listing it.
IGNORED_IMPORTS = 0


def layers_contract() -> dict:
    (contract,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return contract


def test_lint_imports_keeps_the_layers_contract():
    lint_imports = os.path.join(os.path.dirname(sys.executable), "lint-imports")  # the venv's console script
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([lint_imports, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 0 broken." in proc.stdout


def test_the_ignore_list_only_shrinks():
    ignored = layers_contract()["ignore_imports"]
    assert all("*" not in line for line in ignored), "one edge per line: a wildcard would let new imports in"
    assert len(ignored) <= IGNORED_IMPORTS, "an import that breaks the layers: move the code, don't list it"


def test_every_module_of_noise_exp_has_a_layer():
    named = {name.strip() for layer in layers_contract()["layers"] for name in layer.replace("|", ":").split(":")}
    children = {f"noise_exp.{path.stem}" for path in (ROOT / "noise_exp").glob("*.py") if path.stem != "__init__"}
    children |= {f"noise_exp.{path.parent.name}" for path in (ROOT / "noise_exp").glob("*/__init__.py")}
    assert children - named == set(), "give each new module of noise_exp a layer in pyproject.toml"
    assert named - children == set()


def test_conventions_names_every_module_of_the_contract_in_its_layers_paragraph():
    """docs/CONVENTIONS.md's "Layers" paragraph is the contract in words: it names every module the contract names."""
    conventions = (ROOT / "docs" / "CONVENTIONS.md").read_text()
    paragraph = conventions[conventions.index("## Layers"):].split("\n## ")[0]
    named = {name.strip() for layer in layers_contract()["layers"] for name in layer.replace("|", ":").split(":")}
    assert sorted(name for name in named if f"`{name.removeprefix('noise_exp.')}`" not in paragraph) == []
