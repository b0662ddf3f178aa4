"""Every command line: `-h` prints usage and exits 0; a user's mistake is one line `error: ...` and exit code 2."""
from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

from tests.conftest import ROOT

MODULES = ["noise_exp.score", "noise_exp.merge", "noise_exp.report", "noise_exp.human_eval", "noise_exp.benchmark",
           "noise_exp.bank"]
# render_orbits_blender.py runs inside Blender only (it imports bpy)
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py") if p.name != "render_orbits_blender.py")
# entry points whose parser is noise_exp.cli.ArgumentParser (one-line errors)
ONE_LINE_ERRORS = ["noise_exp.score", "noise_exp.merge", "noise_exp.report", "noise_exp.human_eval", "noise_exp.benchmark", "noise_exp.bank", "scripts/convert_sv3d.py",
                   "scripts/make_orbit_fixture.py", "scripts/reproduce_small.py", "scripts/train_small.py"]


def run_entry(entry: str, args: list[str], monkeypatch) -> int:
    """Run a module (`python -m entry`) or script in this process, as its `__main__`; returns the exit code."""
    monkeypatch.setattr(sys, "argv", [entry, *args])
    with pytest.raises(SystemExit) as exit_:
        if entry.startswith("scripts/"):
            runpy.run_path(str(ROOT / entry), run_name="__main__")
        else:
            runpy.run_module(entry, run_name="__main__", alter_sys=True)
    return exit_.value.code


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize("entry", MODULES + [f"scripts/{name}" for name in SCRIPTS])
def test_help_prints_usage_and_exits_0(entry, monkeypatch, capsys):
    assert run_entry(entry, ["-h"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: "), out[:200]


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize("entry", ONE_LINE_ERRORS)
def test_unknown_flag_is_one_line_and_exit_2(entry, monkeypatch, capsys):
    assert run_entry(entry, ["--no-such-flag"], monkeypatch) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert "--help" in captured.err


def run_app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, line", [
    (["model=sdxxl"], "error: In 'config': Could not find 'model/sdxxl'; the options are "),
    (["method.stepz=3"], "error: Could not override 'method.stepz'. To append to your config use +method.stepz=3 "
                         "(Key 'stepz' is not in struct)"),
    (["model.num_steps=["], "error: cannot parse the override 'model.num_steps=[': no viable alternative at input '['"),
    (["--bogus", "method=select"], "error: unknown option --bogus; options go before key=value overrides"),
    (["-m", "--cfg", "job"], "error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be"),
])
def test_config_errors_exit_2_with_one_line(args, line, tmp_path):
    done = run_app(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith(line), done.stderr[-2000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, shown", [(["--help"], "== Configuration groups =="), (["--cfg", "job"], "method:")])
def test_hydra_flags_still_work(args, shown):
    done = run_app(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shown in done.stdout
