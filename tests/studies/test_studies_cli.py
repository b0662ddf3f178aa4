"""python -m noise_exp.studies: one entry for every study; its config is conf/study/<name>.yaml read into the study's
`Config`; an unknown study, key or value is one `error:` line and exit code 2, before any work."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from noise_exp.studies.__main__ import main
from noise_exp.studies.common import study_config, study_module, study_names
from tests.conftest import ROOT

STUDIES = ["compare", "correlation", "judge", "reproduce_shapes", "reproduce_small", "seed_share", "shapes_accuracy",
           "shapes_audit", "speed", "train_shapes"]
# the audit set's steps and the committed models' training stages have no quick mode
QUICK = [name for name in STUDIES if name not in ("shapes_audit", "train_shapes")]


def test_every_study_module_has_its_yaml_and_one_shape():
    assert study_names() == STUDIES
    modules = {path.stem for path in (ROOT / "noise_exp" / "studies").glob("*.py")} - {"__init__", "__main__", "common"}
    assert modules == set(STUDIES)
    for name in STUDIES:
        module = study_module(name)
        assert dataclasses.is_dataclass(module.Config) and callable(module.run), name
        # every knob's value is in the yaml, none in code: the schema has no defaults
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(module.Config)), name


@pytest.mark.parametrize("name", QUICK)
def test_each_quick_mode_changes_only_knobs_of_its_study(name):
    full, quick = study_config(name), study_config(name, ["quick=true"])
    assert type(full) is type(quick) and full != quick
    assert study_config(name, ["quick=false"]) == full


def test_overrides_apply_after_the_quick_block():
    config = study_config("reproduce_shapes", ["quick=true", "seeds=7", "models=[small_shapes,small_shapes_l]",
                                               "lr=0.5", "out=/tmp/x y"])
    assert (config.seeds, config.models, config.lr, config.steps) == (7, ["small_shapes", "small_shapes_l"], 0.5, 1)
    assert str(config.out) == "/tmp/x y"
    assert study_config("speed", ["proxies=[partial:1,lowfreq:2]"]).proxies == ["partial:1", "lowfreq:2"]


@pytest.mark.parametrize("argv, line", [
    (["nope"], "error: unknown study 'nope'; the studies: compare, correlation, judge, reproduce_shapes"),
    (["speed", "bogus=1"], "error: study speed: unknown knob 'bogus'; its knobs: out, models, prompts, seeds,"),
    (["speed", "seeds=abc"], "error: study speed: Value 'abc' of type 'str' could not be converted to Integer"),
    (["speed", "seeds"], "error: 'seeds' is not a key=value override"),
    (["speed", "seeds=[1,"], "error: cannot parse the override 'seeds=[1,'"),
    (["speed", "seeds=4,8"], "error: 'seeds=4,8': a study's knobs take one value each (key=value)"),
    (["speed", "+seeds=4"], "error: '+seeds=4': a study's knobs take one value each (key=value)"),
    (["speed", "quick=maybe"], "error: quick must be true or false, got 'maybe'"),
    (["shapes_audit", "quick=true"], "error: study shapes_audit has no quick mode"),
    (["shapes_audit"], "error: study shapes_audit: step is not set: add step=<value> to the command"),
    (["speed", "threads=0"], "error: threads must be >= 1, got 0"),
    (["speed", "proxies=[exact]"], "error: proxies: exact; choose among partial:1"),
    (["compare", "verifier=shapes_geneval"], "error: verifier and judge are both shapes_geneval"),
    (["speed", "--no-such-flag"], "error: unrecognized arguments: --no-such-flag"),
    ([], "error: the following arguments are required: study"),
])
def test_a_mistake_is_one_error_line_and_exit_2(argv, line, tmp_path, capsys):
    out = [f"out={tmp_path / 'out'}"] * (len(argv) == 2 and "=" in argv[1] and argv[0] != "shapes_audit")
    assert main([*argv, *out]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith(line), captured.err
    assert not any(tmp_path.iterdir())  # refused before any work: no out folder


def test_help_lists_the_studies(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-h"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: python -m noise_exp.studies")
    assert ", ".join(STUDIES) in " ".join(out.split())


def test_the_command_exits_2_on_a_mistake(tmp_path):
    """The real entry point, as `make` runs it."""
    done = subprocess.run([sys.executable, "-m", "noise_exp.studies", "nope", "n=0"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (done.returncode, done.stdout) == (2, "") and done.stderr.startswith("error: unknown study 'nope'; the "
                                                                                "studies: compare, correlation, judge")
    assert done.stderr.count("\n") == 1 and not any(tmp_path.iterdir())



def test_a_studys_help_names_its_knobs_and_the_whole_usage_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train_shapes", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    assert "with its config, conf/study/<name>.yaml; `quick=true` applies the yaml's `quick:` block first." in out
    assert "train_shapes's knobs (conf/study/train_shapes.yaml): stages; no quick mode" in out


@pytest.mark.parametrize("argv, message", [
    (["correlation", "guidance=[]"], "study correlation: guidance needs at least one value"),
    (["speed", "shortlists=[]"], "study speed: shortlists needs at least one value"),
    (["train_shapes", "stages=[]"], "study train_shapes: stages needs at least one value"),
])
def test_an_emptied_list_knob_is_one_line_before_any_work(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
