"""The issue-21 baseline comparer flags a changed number and ignores timing columns (a 2-row synthetic capture)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("compare_outputs", Path(__file__).with_name("compare_outputs.py"))
compare_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_outputs)

HEADER = "dataset,prompt_id,variant,stability,time_s\n"


def capture(folder: Path, second_stability: str, seconds: str) -> Path:
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "results.csv").write_text(
        HEADER + f"d,0,stable,0.5,{seconds}\nd,1,stable,{second_stability},{seconds}\n", encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps({"n": 2, "wall_s": float(seconds)}), encoding="utf-8")
    return folder


def test_a_changed_cell_differs_and_a_changed_time_does_not(tmp_path, capsys):
    before = capture(tmp_path / "before", "0.25", "1.5")
    assert compare_outputs.main([str(before), str(capture(tmp_path / "same", "0.25", "9.9"))]) == 0
    assert "2 identical, 0 differ, 0 missing" in capsys.readouterr().out

    assert compare_outputs.main([str(before), str(capture(tmp_path / "changed", "0.2500001", "1.5"))]) == 1
    out = capsys.readouterr().out
    assert ("differs    run/results.csv: row 1 {'dataset': 'd', 'prompt_id': 1, 'variant': 'stable'} "
            "column stability: 0.25 != 0.2500001") in out
    assert "1 identical, 1 differ, 0 missing" in out

    (tmp_path / "changed" / "summary.json").unlink()
    assert compare_outputs.main([str(before), str(tmp_path / "changed")]) == 1
    assert "missing    summary.json" in capsys.readouterr().out


def test_a_moved_target_is_its_new_name_and_any_other_change_differs():
    """Old run folders load through LEGACY_TARGETS, so the comparer reads an old `_target_` as the new one."""
    def config(target: str) -> dict:
        return {"evaluator": [{"_target_": target, "device": "cpu"}]}

    clean = lambda value: compare_outputs.clean_json(value, "/nowhere")  # noqa: E731
    assert clean(config("evaluators.digits.DigitClassifier")) == clean(config("noise_exp.evaluators.digits.DigitClassifier"))
    assert clean(config("evaluators.digits.DigitClassifier")) != clean(config("noise_exp.evaluators.digits.DigitRealism"))
