"""Old run folders and banks still load: a `_target_` saved before issue 21 moved its class is upgraded on load."""
from __future__ import annotations

from omegaconf import OmegaConf

from noise_exp.config import LEGACY_TARGETS, upgrade_target, upgrade_targets


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
