"""Every command line: `-h` prints usage and exits 0; a user's mistake is one line `error: ...` and exit code 2."""
from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

from tests.conftest import ROOT

MODULES = ["noise_exp.score", "noise_exp.merge", "noise_exp.report", "noise_exp.human_eval", "noise_exp.benchmark",
           "noise_exp.bank", "noise_exp.training.digits", "noise_exp.training.shapes",
           "noise_exp.training.shapes_reward", "noise_exp.api.bench", "noise_exp.studies"]
# render_orbits_blender.py runs inside Blender only (it imports bpy)
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py") if p.name != "render_orbits_blender.py")
# entry points whose parser is noise_exp.cli.ArgumentParser (one-line errors)
ONE_LINE_ERRORS = ["noise_exp.score", "noise_exp.merge", "noise_exp.report", "noise_exp.human_eval", "noise_exp.benchmark", "noise_exp.bank",
                   "noise_exp.api.bench", "noise_exp.studies", "scripts/convert_sv3d.py",
                   "scripts/make_orbit_fixture.py", "noise_exp.training.digits",
                   "noise_exp.training.shapes", "noise_exp.training.shapes_reward"]


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


# bad values of the newer commands' arguments (issue 25): refused in one line before any work, nothing written
BAD_ARGUMENTS = [
    ("noise_exp.studies", ["speed", "threads=0", "out={tmp}/out"], "threads must be >= 1, got 0"),
    ("noise_exp.studies", ["speed", "shortlists=[4,0]", "out={tmp}/out"], "shortlists must be >= 1, got 0"),
    ("noise_exp.studies", ["speed", "out={file}"], "is a file, not a folder"),
    ("noise_exp.studies", ["reproduce_shapes", "threads=0", "out={tmp}/out"], "threads must be >= 1, got 0"),
    ("noise_exp.studies", ["reproduce_small", "steps=0", "out={tmp}/out"], "steps must be >= 1, got 0"),
    ("noise_exp.studies", ["compare", "prompts=0", "out={tmp}/out"], "prompts must be >= 1, got 0"),
    ("noise_exp.studies", ["compare", "doc={tmp}", "out={tmp}/out"], "is a folder, not a file"),
    ("noise_exp.studies", ["shapes_accuracy", "limit=6", "out={tmp}/out.json", "overrides=['model.num_steps=abc']"],
     "model.num_steps must be an integer, got 'abc'"),
    ("noise_exp.studies", ["seed_share", "seeds=1", "out={tmp}/out"], "seeds must be >= 2"),
    ("noise_exp.studies", ["correlation", "guidance=[-1]", "out={tmp}/out"], "guidance must be >= 0.0, got -1"),
    ("noise_exp.human_eval", ["export", "{tmp}", "--out", "/missing/x.csv"], "the folder /missing does not exist"),
    ("noise_exp.human_eval", ["analyze", "{tmp}", "--csv", "{tmp}"], "--csv {tmp} is a folder, not a file"),
    ("noise_exp.report", ["{tmp}", "--grid-rows", "0"], "--grid-rows must be >= 1, got 0"),
    ("noise_exp.merge", ["{tmp}", "--out", "{file}"], "is a file, not a folder"),
    ("noise_exp.bank", ["select", "{tmp}", "--by", "stability", "--images", "bad", "--out", "{tmp}/out"],
     "--images bad: choose one of auto, bank, regenerate, none"),
    ("noise_exp.bank", ["correlate", "{tmp}", "--scores", "aes", "--similarities", "zz", "--out", "{tmp}/out"],
     "--similarities 'zz': choose among cosine, pearson, neg_rmse"),
    ("noise_exp.api.bench", ["--seeds", "0"], "--seeds must be >= 1, got 0"),
]


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize("entry, args, line", BAD_ARGUMENTS, ids=[f"{e} {' '.join(a)}" for e, a, _ in BAD_ARGUMENTS])
def test_bad_argument_values_are_one_line_before_any_work(entry, args, line, tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    fill = {"tmp": str(tmp_path), "file": str(tmp_path / "a-file")}
    assert run_entry(entry, [a.format(**fill) for a in args], monkeypatch) == 2
    err = capsys.readouterr().err
    errors = [text for text in err.splitlines() if text.startswith("error: ")]  # (loading bars may precede it)
    assert len(errors) == 1 and line.format(**fill) in errors[0] and "Traceback" not in err, err[-1000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no --out folder or file was made


def test_bank_images_must_be_a_flag(tmp_path):
    from noise_exp.errors import NoiseExpError
    from noise_exp.runner import run_experiment
    from tests.conftest import compose_cfg

    cfg = compose_cfg(["model=tiny_sd", "method.num_seeds=2", "prompt=a cat", f"bank.path={tmp_path / 'bank'}",
                       "bank.images=abc"])
    with pytest.raises(NoiseExpError, match="bank.images must be true or false, got 'abc'"):
        run_experiment(cfg, tmp_path / "run")
    assert not (tmp_path / "bank").exists()
