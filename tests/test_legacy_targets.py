"""Old run folders and banks still load: a `_target_` saved before issue 21 moved its class is upgraded on load."""
from __future__ import annotations

import csv
import importlib
import json
import subprocess
import sys

import pytest
import yaml
from hydra.utils import get_object
from omegaconf import OmegaConf

from noise_exp import score as score_cli
from noise_exp.config import CONF_DIR, LEGACY_TARGETS, compose_config, upgrade_target, upgrade_targets
from noise_exp.evaluators import build_evaluators
from noise_exp.evaluators.digits import DigitClassifier
from tests.conftest import ROOT
from tests.run_integrity.helpers import without_measures


def test_upgrade_targets_rewrites_every_saved_target_and_nothing_else():
    saved = {"evaluator": {"digits": {"_target_": "evaluators.digits.DigitClassifier", "path": "evaluators.txt"}},
             "list": [{"_target_": "evaluators.ssim.SSIM"}, "evaluators.aes"],
             "model": {"_target_": "noise_exp.models.stable_diffusion.StableDiffusionModel", "steps": 5}}
    assert upgrade_targets(saved) == {
        "evaluator": {"digits": {"_target_": "noise_exp.evaluators.digits.DigitClassifier", "path": "evaluators.txt"}},
        "list": [{"_target_": "noise_exp.evaluators.ssim.SSIM"}, "evaluators.aes"],
        "model": {"_target_": "noise_exp.models.stable_diffusion.StableDiffusionModel", "steps": 5}}
    assert saved["evaluator"]["digits"]["_target_"] == "evaluators.digits.DigitClassifier"  # a copy, not in place
    assert upgrade_target("noise_exp.evaluators.ssim.SSIM") == "noise_exp.evaluators.ssim.SSIM"  # upgraded once


def test_upgrade_targets_keeps_a_dictconfig_and_its_interpolations():
    saved = OmegaConf.create({"device": "cpu", "evaluator": {"d": {"_target_": "evaluators.digits.DigitClassifier",
                                                                   "device": "${device}"}}})
    upgraded = upgrade_targets(saved)
    assert OmegaConf.is_config(upgraded)
    assert OmegaConf.to_container(upgraded.evaluator, resolve=True) == {
        "d": {"_target_": "noise_exp.evaluators.digits.DigitClassifier", "device": "cpu"}}


def test_the_longest_matching_prefix_wins(monkeypatch):
    monkeypatch.setitem(LEGACY_TARGETS, "evaluators.digits.", "elsewhere.")
    assert upgrade_target("evaluators.digits.DigitClassifier") == "elsewhere.DigitClassifier"
    assert upgrade_target("evaluators.ssim.SSIM") == "noise_exp.evaluators.ssim.SSIM"


@pytest.mark.parametrize("old", sorted(LEGACY_TARGETS))
def test_every_legacy_target_leads_somewhere_that_exists(old):
    new = LEGACY_TARGETS[old]
    assert old.endswith(".") == new.endswith("."), "a prefix maps to a prefix, a name to a name"
    if new.endswith("."):
        importlib.import_module(new[:-1])  # a package whose modules took over the old ones
    else:
        assert get_object(new) is not None


def test_the_configs_name_no_legacy_target():
    """Today's configs are written with today's paths: upgrading them changes nothing."""
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        for line in path.read_text().splitlines():
            key, _, value = line.strip().partition(":")
            if key == "_target_":
                assert upgrade_target(value.strip()) == value.strip(), f"{path}: {line.strip()}"


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_run_folder_saved_before_the_evaluators_moved_is_scored_and_resumed(tmp_path, capsys):
    """A finished small_digits run whose .hydra/config.yaml (and run.json's copy of it) says
    `_target_: evaluators.digits.DigitClassifier`, as every run folder written before issue 21 does: the score CLI
    builds its evaluator from it, and run.py resumes it with nothing recomputed."""
    from noise_exp.runner import run_experiment

    run_dir = tmp_path / "run"
    args = ["model=small_digits", "model.num_steps=2", "dataset=digits", "dataset.limit=1", "method=select",
            "method.num_seeds=2", "evaluator=[digit_classifier]"]
    cfg = compose_config(args)
    text = OmegaConf.to_yaml(cfg)  # what Hydra saves as .hydra/config.yaml, here with the old target
    assert "_target_: noise_exp.evaluators.digits.DigitClassifier" in text
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(text.replace("noise_exp.evaluators.", "evaluators."))
    run_experiment(cfg, run_dir)  # as run.py does, in this process (run.json copies the saved config)
    rows = read_csv(run_dir / "results.csv")
    assert [row["variant"] for row in rows] == ["stable", "unstable"] and all(row["digit_classifier"] for row in rows)
    saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert saved["evaluator"]["digit_classifier"]["_target_"] == "evaluators.digits.DigitClassifier"
    assert "evaluators.digits.DigitClassifier" in json.loads((run_dir / "run.json").read_text())["hydra"]["config.yaml"]

    group = score_cli.evaluators_of_run(run_dir)
    assert group["digit_classifier"]["_target_"] == "noise_exp.evaluators.digits.DigitClassifier"
    assert type(build_evaluators(group, load=False)["digit_classifier"]) is DigitClassifier
    capsys.readouterr()
    assert score_cli.main([str(run_dir)]) == 0
    assert f"{run_dir}: scored 2 rows (digit_classifier=" in capsys.readouterr().out
    assert read_csv(run_dir / "results.csv") == rows  # the same scores, from the upgraded config

    again = subprocess.run([sys.executable, "run.py", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 prompts (1 already done)" in again.stdout
    assert without_measures(read_csv(run_dir / "results.csv")) == without_measures(rows)
