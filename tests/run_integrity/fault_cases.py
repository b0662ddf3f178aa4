"""The fault matrix: bad inputs and faults, each to be answered with one line, a documented exit code, nothing lost.

One finished, scored run folder (2 prompts, tiny SD, K = 2) is made once; each case runs its command against a
fresh copy of it (or a fresh folder where the case's settings are another experiment), so "nothing lost" is checked
the same way everywhere: the finished prompts' records and scores are unchanged after the fault.

`python -m tests.run_integrity.fault_cases [--out docs/fault_matrix.md]` runs the matrix and writes its table
(exit code, message, seconds per case); `tests/run_integrity/test_fault_matrix.py` runs and asserts it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.run_integrity.helpers import MEAN_PIXEL, timeless

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
BASE = ["model=tiny_sd", "method=select", "method.num_seeds=2", "dataset=drawbench", "dataset.limit=2",
        "save_noise=false", MEAN_PIXEL]
LONG = ["dataset.limit=60"]  # enough prompts (about 1 s each) to be interrupted mid-run
IS_ROOT = os.geteuid() == 0
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # started in the background by a shell without job control (`cmd &`): SIGINT is ignored and run.py would inherit
    # that, so the Ctrl-C case could never interrupt it; a terminal's Ctrl-C is what the case simulates
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    run_dir: Path
    lost: list[str] = field(default_factory=list)  # finished records changed or gone after the fault
    unmet: str | None = None  # what the case's own check found wrong


@dataclass
class Fault:
    """One row of the matrix: what goes wrong, the command's extra arguments, and the expected answer."""

    name: str
    args: list[str] = field(default_factory=list)
    code: int = 2
    message: str = ""  # regex the single `error: ` line (or `warning: ` line for code 0) must match
    fresh: bool = False  # run in a new folder instead of a copy of the finished run
    prepare: Callable[[Path], list[str]] | None = None  # writes files under the case folder; returns more args
    module: str | None = None  # run `python -m <module>` (or a `scripts/*.py` path) with `args` instead of run.py
    act: Callable[[subprocess.Popen, Path], None] | None = None  # acts on the running command (signals)
    after: Callable[[Path], Outcome] | None = None  # a follow-up command whose outcome is judged instead
    needs_root: bool = False
    closed_stdout: bool = False  # the reader of stdout has gone (`| head -2`) before the command writes
    batched: bool = False  # a module row run in the one shared process of tests/run_integrity/batch.py
    kept: int = 2  # finished prompts whose records and scores must be unchanged afterwards
    check: Callable[[Path, Outcome], str | None] | None = None  # a case-specific check; returns what is wrong
    env: Callable[[Path], dict[str, str]] | None = None  # environment variables for the command, given the case
    requires: str | None = None  # a program the case drives (e.g. sbatch): not run where it is not installed


# --- preparing files --------------------------------------------------------------------------------------

def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def prompts_file(name: str, text: str, encoding: str = "utf-8") -> Callable[[Path], list[str]]:
    return lambda case: ["dataset=prompts", f"dataset.path={_write(case / name, text, encoding)}"]


def corrupt_record(case: Path) -> list[str]:
    _write(case / "run" / "prompts" / "1.json", '{"prompt_id": 1, "variants": [')
    return []


def garbage_checkpoint(case: Path) -> list[str]:
    """An HPS v2 checkpoint that is an HTML error page saved in its place (a tiny open_clip architecture)."""
    from tests.support.scorers import tiny_open_clip_config

    path = case / "HPS_v2_compressed.pt"
    path.write_bytes(b"<html><body>429 Too Many Requests</body></html>" * 50)
    arch = tiny_open_clip_config(case)
    return ["evaluator=[hpsv2]", f"evaluator.hpsv2.checkpoint={path}", f"evaluator.hpsv2.arch={arch}"]


def live_lock_holder(case: Path) -> list[str]:
    """A second process that holds the run folder's lock for a minute (terminated by `_cleanup`)."""
    ready = case / "holder.ready"
    code = ("import sys, time; from pathlib import Path; from noise_exp.rundir.lock import RunLock; "
            f"RunLock(Path({str(case / 'run')!r})).acquire(); Path({str(ready)!r}).touch(); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV)
    (case / "holder.pid").write_text(str(holder.pid))
    deadline = time.time() + 120
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.1)
    return []


def nan_weights(case: Path) -> list[str]:
    """A copy of the tiny model whose UNet output layer is NaN (a diverged fine-tune)."""
    from safetensors.torch import load_file, save_file

    from tests.conftest import compose_cfg

    weights = case / "nan-model"
    shutil.copytree(compose_cfg(["model=tiny_sd"]).model.pretrained, weights)
    unet = next((weights / "unet").glob("*.safetensors"))
    state = load_file(unet)
    state = {k: (v * float("nan") if k.startswith("conv_out") else v) for k, v in state.items()}
    save_file(state, unet)
    return [f"model.pretrained={weights}"]


def unmade_parent(case: Path) -> list[str]:
    (case / "a-file").write_text("not a folder")
    return [f"hydra.run.dir={case / 'a-file' / 'run'}"]


def _mount(case: Path, options: str) -> None:
    """Mount a small tmpfs over the case's run folder, holding a copy of the finished run."""
    run_dir = case / "run"
    keep = case / "run.copy"
    shutil.move(run_dir, keep)
    run_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(run_dir)], check=True)
    shutil.copytree(keep, run_dir, dirs_exist_ok=True)


def read_only_folder(case: Path) -> list[str]:
    _mount(case, "size=8m")
    subprocess.run(["mount", "-o", "remount,ro", str(case / "run")], check=True)
    return []


def small_disk(case: Path) -> list[str]:
    used = sum(p.stat().st_size for p in (case / "run").rglob("*") if p.is_file())
    _mount(case, f"size={used + 400_000}")
    return LONG


def empty_folder(case: Path) -> list[str]:
    (case / "empty").mkdir()
    return [str(case / "empty")]


def a_file(case: Path) -> Path:
    return _write(case / "a-file", "not a folder")


def synthetic_bank(case: Path) -> Path:
    """A bank of 2 prompts x 3 candidates written by the bank's own writer (stability only, no scores)."""
    from noise_exp.candidates import CandidateBank
    from tests.support.bank import SCOPE, synthetic

    bank = CandidateBank(case / "bank", create=True)
    writer = bank.writer("fault-matrix")
    for prompt in ("a cat", "a dog"):
        writer.add(SCOPE, synthetic(prompt, range(3)))
    return bank.path


def bank_command(command: str, *flags: str, out: Callable[[Path], Path] | None = None):
    """`python -m noise_exp.bank <command> <a bank> <flags>`, with --out at `out(case)` when given."""
    def prepare(case: Path) -> list[str]:
        bank = synthetic_bank(case)
        return [command, str(bank), *flags, *(["--out", str(out(case))] if out else [])]
    return prepare


def no_out_folder(case: Path, outcome: Outcome) -> str | None:
    return f"the failed query left {case / 'out'} behind" if (case / "out").exists() else None


def sweep_with_a_failed_job(case: Path) -> list[str]:
    """A local sweep as Hydra leaves it: job 0 finished (a copy of the finished run), job 1 failed (its .hydra/
    and run.log only), and multirun.yaml naming both."""
    import yaml

    sweep = case / "sweep"
    shutil.copytree(case / "run", sweep / "0")
    shutil.rmtree(case / "run")
    task = yaml.safe_load((sweep / "0" / ".hydra" / "overrides.yaml").read_text())
    task = [o for o in task if not o.startswith("hydra.")]
    (sweep / "1" / ".hydra").mkdir(parents=True)
    (sweep / "1" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(task + ["model.num_steps=0"]))
    (sweep / "1" / "run.log").write_text("job #1 failed: model.num_steps must be >= 1, got 0\n")
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(task + ["model.num_steps=4"]))
    multirun = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                      "max_batch_size": None, "params": None},
                          "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": task + ["model.num_steps=4,0"]}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    return [str(sweep), "--no-tracker"]


def merged_the_finished_job(case: Path, outcome: Outcome) -> str | None:
    merged = case / "sweep" / "merged" / "results.csv"
    return None if merged.is_file() else "--allow-missing did not merge the finished job"


def small_bank_disk(case: Path) -> list[str]:
    """The candidate bank on a 16 KiB tmpfs: its file (~10 KB a prompt, rewritten whole) fits once, not twice."""
    bank = case / "bank"
    bank.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(bank)], check=True)
    (case / "bank.mounted").touch()
    return [f"bank.path={bank}", "dataset.limit=3"]


def nothing_generated(case: Path, outcome: Outcome) -> str | None:
    made = [p.name for p in (case / "run").rglob("*.png")] if (case / "run").exists() else []
    return f"images were generated before the refusal: {made}" if made or "results:" in outcome.stdout else None


# --- acting on a running command --------------------------------------------------------------------------

def when_prompt_done(prompt_id: int, sig: int) -> Callable[[subprocess.Popen, Path], None]:
    def act(process: subprocess.Popen, case: Path) -> None:
        record = case / "run" / "prompts" / f"{prompt_id}.json"
        deadline = time.time() + 300
        while not record.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(sig)
    return act


def rerun(case: Path) -> Outcome:
    return run_command(BASE + ["dataset.limit=4", f"hydra.run.dir={case / 'run'}"])


def resumed(case: Path, outcome: Outcome) -> str | None:
    leftovers = [p.name for p in (case / "run" / "prompts").iterdir() if not p.name.endswith(".json")]
    if not re.search(r"4 prompts \([3-4] already done\)", outcome.stdout):
        return f"the rerun did not resume: {outcome.stdout[-300:]!r}"
    return f"temporary files left in prompts/: {leftovers}" if leftovers else None


def other_job_finished(case: Path, outcome: Outcome) -> str | None:
    return None if (case / "sweep" / "0" / "results.csv").is_file() else "the sweep's healthy job did not finish"


def sweep_dir(case: Path) -> list[str]:
    return [f"hydra.sweep.dir={case / 'sweep'}"]


def dead_controller(case: Path) -> dict[str, str]:
    """SLURM_CONF of a cluster whose controller is a closed port on this machine: sbatch cannot reach it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = _write(case / "slurm.conf", f"ClusterName=unreachable\nSlurmctldHost=localhost(127.0.0.1)\n"
                                       f"SlurmctldPort={port}\nMessageTimeout=2\nNodeName=localhost CPUs=1\n"
                                       f"PartitionName=local Nodes=localhost Default=YES\n")
    return {"SLURM_CONF": str(conf)}


def nothing_submitted(case: Path, outcome: Outcome) -> str | None:
    made = sorted(str(p.relative_to(case)) for p in (case / "sweep").rglob("results.csv"))
    return f"jobs ran although the submission failed: {made}" if made else None


FAULTS: list[Fault] = [
    # prompt data
    Fault("prompt file missing", ["dataset=prompts", "dataset.path=/nonexistent/prompts.txt"],
          message="prompt file not found: /nonexistent/prompts.txt"),
    Fault("dataset=prompts without dataset.path", ["dataset=prompts"], message="dataset.path"),
    Fault("prompt path is a directory", message="is a directory",
          prepare=lambda case: ["dataset=prompts", f"dataset.path={case}"]),
    Fault("malformed CSV", message="malformed CSV", prepare=prompts_file("p.csv", 'prompt\n"never closed\n')),
    Fault("JSONL prompt is null", message=r"p\.jsonl:2",
          prepare=prompts_file("p.jsonl", '{"prompt": "a cat"}\n{"prompt": null}\n')),
    Fault("JSONL prompt is a number", message=r"p\.jsonl:1",
          prepare=prompts_file("p.jsonl", '{"prompt": 42}\n')),
    Fault("prompt file not UTF-8", message="not UTF-8", prepare=prompts_file("p.txt", "caf\xe9\n", "latin-1")),
    Fault("CSV with a UTF-8 BOM (accepted)", ["dataset.limit=1"], code=0, fresh=True, kept=0,
          prepare=prompts_file("p.csv", "\ufeffprompt\na red cube\n")),
    Fault("dataset.offset past the end", ["dataset.offset=1000"], message="no prompts to run"),
    # config values
    Fault("unknown config option", ["model=sdxxl"], message="sdxxl"),
    Fault("misspelt config key", ["method.stepz=3"], message="stepz"),
    Fault("non-integer num_seeds", ["method.num_seeds=abc"], message="num_seeds"),
    Fault("non-integer optimization steps", ["method=optimize", "method.steps=2.5"], fresh=True, kept=0,
          message="steps"),
    Fault("negative learning rate", ["method=optimize", "method.lr=-1"], fresh=True, kept=0, message="lr"),
    Fault("num_steps out of range", ["model.num_steps=0"], fresh=True, kept=0, message="num_steps"),
    Fault("unknown variant in save_images", ["save_images=[stable,shiny]"], message="unknown variant"),
    # models and weights
    Fault("model folder missing", ["model.pretrained=/nonexistent/model", "model.builder=null"], fresh=True, kept=0,
          message="model folder /nonexistent/model does not exist"),
    Fault("hub model not cached, offline", ["model=sdxl_turbo"], fresh=True, kept=0,
          message="could not load model 'stabilityai/sdxl-turbo'"),
    Fault("NaN weights (non-finite latents)", fresh=True, kept=0, message="non-finite", prepare=nan_weights),
    Fault("evaluator weights not available offline", ["evaluator=[hpsv2]"], message="not available offline"),
    Fault("corrupt evaluator checkpoint", message=r"cannot read evaluator weights .*HPS_v2_compressed\.pt",
          prepare=garbage_checkpoint),
    # the run folder
    Fault("resume with other settings", ["method.num_seeds=3"], message=r"holds results of other settings \(method"),
    Fault("second writer on the same folder", ["dataset.limit=3"], message="is in use by pid", prepare=live_lock_holder),
    Fault("corrupt per-prompt record (recomputed)", code=0, message=r"1\.json is corrupt", prepare=corrupt_record,
          kept=1),
    Fault("run folder cannot be created", fresh=True, kept=0, message="a-file.*Not a directory; nothing was run",
          prepare=unmade_parent),
    Fault("run folder read-only", ["dataset.limit=3"], message="Read-only file system", prepare=read_only_folder,
          needs_root=True),
    Fault("disk full", message="no space left on the device.*finished prompts are kept", prepare=small_disk,
          needs_root=True),
    Fault("Ctrl-C during a run", LONG, code=130, message=r"interrupted after \d+ prompts; rerun the same command",
          act=when_prompt_done(2, signal.SIGINT)),
    Fault("SIGKILL during a run, then rerun", LONG, code=0, act=when_prompt_done(2, signal.SIGKILL), after=rerun,
          check=resumed),
    Fault("one job of a local sweep fails", ["-m", "model.num_steps=4,0"], fresh=True, kept=0,
          message=r"1 of 2 jobs failed.*model\.num_steps=0", prepare=sweep_dir, check=other_job_finished),
    # the other commands
    Fault("score: folder without results.csv", ["evaluator=[ssim]"], module="noise_exp.score", batched=True,
          message="results.csv", prepare=empty_folder),
    Fault("merge: folder without runs", module="noise_exp.merge", batched=True, message="no run folders",
          prepare=empty_folder),
    Fault("report: unknown flag", ["--bogus"], module="noise_exp.report", batched=True,
          message="unrecognized arguments: --bogus", prepare=empty_folder),
    # the features added after the matrix was written (issue 25)
    Fault("select_fast: proxy costs more than exact selection (steps:999)",
          ["method=select_fast", "method.num_seeds=4", "method.shortlist=1", "method.proxy=steps:999"], fresh=True,
          kept=0, message=r"method\.proxy=steps:999 costs 12012 NFEs .* not below exact selection's 48"),
    Fault("tiny_sd3: negative guidance", ["model=tiny_sd3", "model.guidance_scale=-2"], fresh=True, kept=0,
          message=r"model\.guidance_scale must be >= 0\.0, got -2"),
    Fault("prompt outside the evaluator's grammar", ["evaluator=[shapes_geneval]", "prompt=a purple hexagon"],
          fresh=True, kept=0, message="'a purple hexagon' is not a shapes-world caption", check=nothing_generated),
    Fault("best_of_n with bank.path (reads it, adds nothing)",
          ["method=best_of_n", "method.num_seeds=2", "method.verifier=shapes_geneval", "prompt=a red circle"],
          code=0, fresh=True, kept=0, message=r"best_of_n only reads the bank .* adds none",
          prepare=lambda case: [f"bank.path={case / 'bank'}"]),
    Fault("bank on a full disk", fresh=True, kept=0, needs_root=True, prepare=small_bank_disk,
          message=r"no space left on the device while writing \S*/bank/.*finished prompts are kept"),
    Fault("merge: a sweep job failed", module="noise_exp.merge", batched=True, prepare=sweep_with_a_failed_job,
          message=r"1 job\(s\) of .* did not finish: job 1 \(model\.num_steps=0\) has no results\.csv"),
    Fault("merge --allow-missing: a sweep job failed (merged without it)", ["--allow-missing"], code=0,
          module="noise_exp.merge", batched=True, prepare=sweep_with_a_failed_job, check=merged_the_finished_job,
          message=r"merging without 1 job\(s\): job 1 \(model\.num_steps=0\)"),
    Fault("bank select: --out is a file", module="noise_exp.bank", batched=True,
          message="--out .*a-file is a file, not a folder",
          prepare=bank_command("select", "--by", "stability", out=a_file)),
    Fault("bank correlate: --out is a file", module="noise_exp.bank", batched=True,
          message="--out .*a-file is a file, not a folder",
          prepare=bank_command("correlate", "--scores", "aes", out=a_file)),
    Fault("bank select: failed query (no folder left)", module="noise_exp.bank", batched=True,
          message="have no score.aes", check=no_out_folder,
          prepare=bank_command("select", "--by", "aes", out=lambda case: case / "out")),
    Fault("bank select: negative --seed", module="noise_exp.bank", batched=True, message="--seed must be >= 0, got -1",
          prepare=bank_command("select", "--by", "random", "--seed", "-1", out=lambda case: case / "out")),
    Fault("bank info: reader gone (piped into head)", module="noise_exp.bank", code=0, closed_stdout=True,
          prepare=bank_command("info")),
    Fault("shapes_accuracy: threads=0", ["shapes_accuracy", "threads=0"], module="noise_exp.studies", batched=True,
          message="threads must be >= 1, got 0"),
    Fault("shapes_accuracy: unknown model", ["shapes_accuracy", "model=bogus"], module="noise_exp.studies",
          batched=True, message="Could not find 'model/bogus'; the options are"),
    Fault("shapes_accuracy: out in a missing folder", ["shapes_accuracy", "out=/missing/dir/a.json"],
          module="noise_exp.studies", batched=True, message="folder /missing/dir does not exist"),
    Fault("compare: unknown verifier", module="noise_exp.studies", batched=True,
          message="Could not load 'evaluator/bogus'",
          prepare=lambda case: ["compare", "verifier=bogus", f"out={case / 'out'}"], check=no_out_folder),
    Fault("correlation: guidance=[]", module="noise_exp.studies", batched=True, message="guidance needs at least one value",
          prepare=lambda case: ["correlation", "guidance=[]", f"out={case / 'out'}"], check=no_out_folder),
    Fault("reproduce_small: optimize_prompts=101", module="noise_exp.studies", batched=True,
          message=r"optimize_prompts must be <= 100 \(the digits prompts\), got 101",
          prepare=lambda case: ["reproduce_small", "optimize_prompts=101", f"out={case / 'out'}"], check=no_out_folder),
    Fault("seed_share: unknown model", module="noise_exp.studies", batched=True,
          message="models: bogus is not a model config; choose among",
          prepare=lambda case: ["seed_share", "models=[bogus]", f"out={case / 'out'}"], check=no_out_folder),
    Fault("train_shapes: a stage row with steps=0", ["train_shapes", "stages=[{size:32,steps:0}]"],
          module="noise_exp.studies", batched=True, message="--steps must be >= 1, got 0"),
    Fault("training.shapes_reward: --steps 0", module="noise_exp.training.shapes_reward", batched=True,
          message="--steps must be >= 1, got 0", check=no_out_folder,
          prepare=lambda case: ["--steps", "0", "--out", str(case / "out")]),
    Fault("report: --out is a file", module="noise_exp.report", batched=True,
          message="--out .*a-file is a file, not a folder",
          prepare=lambda case: [str(empty_folder(case)[0]), "--out", str(a_file(case))]),
    Fault("human_eval serve: port out of range", module="noise_exp.human_eval", batched=True,
          message=r"--port must be in 1\.\.65535",
          prepare=lambda case: ["serve", *empty_folder(case), "--port", "99999"]),
    Fault("unknown model.device", ["model.device=bogus"], fresh=True, kept=0,
          message=r"unknown device 'bogus'; choose auto, cpu, cuda or cuda:<index>"),
    Fault("SLURM submission fails (controller unreachable)", ["-m", "hydra/launcher=slurm",
          "hydra.launcher.gpus_per_node=0", "model.num_steps=2,3"], fresh=True, kept=0, prepare=sweep_dir,
          env=dead_controller, requires="sbatch", check=nothing_submitted,
          message=r"SLURM submission failed, nothing was submitted: sbatch: error: Batch job submission failed: "
                  r"Unable to contact slurm controller"),
]


# --- running ----------------------------------------------------------------------------------------------

def run_command(args: list[str], module: str | None = None, act=None, case: Path | None = None,
                timeout: float = 600, env: dict[str, str] | None = None, closed_stdout: bool = False) -> Outcome:
    if module is None:
        command = [sys.executable, "run.py"]
        args = [a for a in args if a.startswith("-")] + [a for a in args if not a.startswith("-")]  # flags first
    else:
        command = [sys.executable, module] if module.endswith(".py") else [sys.executable, "-m", module]
    stdout = subprocess.PIPE
    if closed_stdout:
        reader, stdout = os.pipe()
        os.close(reader)
    start = time.perf_counter()
    process = subprocess.Popen(command + args, cwd=ROOT, env={**ENV, **(env or {})}, stdout=stdout,
                               stderr=subprocess.PIPE, text=True)
    if closed_stdout:
        os.close(stdout)
    if act is not None:
        import threading
        threading.Thread(target=act, args=(process, case), daemon=True).start()
    stdout, stderr = process.communicate(timeout=timeout)
    stdout = stdout or ""
    run_dir = next((Path(a.split("=", 1)[1]) for a in args if a.startswith("hydra.run.dir=")), case or ROOT)
    return Outcome(process.returncode, stdout, stderr, time.perf_counter() - start, run_dir)


def make_finished_run(folder: Path) -> Path:
    """The finished, scored run every case starts from."""
    outcome = run_command(BASE + [f"hydra.run.dir={folder}"])
    if outcome.returncode != 0:
        raise RuntimeError(f"the base run failed: {outcome.stderr[-2000:]}")
    return folder


def prepared(fault: Fault, base: Path, case: Path) -> list[str]:
    """The case folder (with a copy of the finished run unless `fresh`) and the arguments `prepare` adds."""
    case.mkdir(parents=True)
    if not fault.fresh:  # a module's case may read the finished run too (merge: a sweep made of it)
        shutil.copytree(base, case / "run")
    return fault.prepare(case) if fault.prepare else []


def execute(fault: Fault, base: Path, case: Path) -> Outcome:
    try:
        extra = prepared(fault, base, case)
        if fault.module:
            outcome = run_command(fault.args + extra, module=fault.module, case=case,
                                  closed_stdout=fault.closed_stdout)
            outcome.unmet = fault.check(case, outcome) if fault.check else None
            return outcome
        where = [] if any(a.startswith("hydra.") for a in extra) else [f"hydra.run.dir={case / 'run'}"]
        outcome = run_command(BASE + fault.args + extra + where, act=fault.act, case=case,
                              env=fault.env(case) if fault.env else None)
        if fault.after:
            outcome = fault.after(case)
        outcome.lost = kept_records(base, outcome.run_dir, fault.kept)  # judged before a mount goes away
        outcome.unmet = fault.check(case, outcome) if fault.check else None
        return outcome
    finally:
        _cleanup(case)


def _cleanup(case: Path) -> None:
    holder = case / "holder.pid"
    if holder.exists():
        try:
            os.kill(int(holder.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
    if (case / "run.copy").exists():
        subprocess.run(["umount", "-l", str(case / "run")], check=False)
    if (case / "bank.mounted").exists():
        subprocess.run(["umount", "-l", str(case / "bank")], check=False)


def execute_batch(faults: list[Fault], base: Path, cases: dict[str, Path]) -> dict[str, Outcome]:
    """The batched module rows, in one process (tests/run_integrity/batch.py): one start-up for all of them."""
    commands = [[fault.module, fault.args + prepared(fault, base, cases[fault.name])] for fault in faults]
    results_file = cases[faults[0].name].parent / "batch.json"
    done = subprocess.run([sys.executable, "-m", "tests.run_integrity.batch", str(results_file)], cwd=ROOT, env=ENV,
                          input=json.dumps(commands), capture_output=True, text=True, timeout=600)
    if done.returncode or not results_file.is_file():
        raise RuntimeError(f"the batch process failed: {done.stderr[-2000:]}")
    outcomes = {}
    for fault, result in zip(faults, json.loads(results_file.read_text())):
        case = cases[fault.name]
        outcome = Outcome(result["returncode"], result["stdout"], result["stderr"], result["seconds"], case)
        outcome.unmet = fault.check(case, outcome) if fault.check else None
        outcomes[fault.name] = outcome
    return outcomes


def run_matrix(workdir: Path, faults: list[Fault] = FAULTS, workers: int = 2) -> dict[str, Outcome]:
    """Every applicable fault against copies of one finished run, `workers` commands at a time (the batched
    rows are one of those commands)."""
    base = make_finished_run(workdir / "base")
    todo = [f for f in faults if (IS_ROOT or not f.needs_root) and installed(f)]
    cases = {f.name: workdir / f"case{i:02d}" for i, f in enumerate(todo)}
    batched = [f for f in todo if f.batched]
    with ThreadPoolExecutor(workers) as pool:
        batch = pool.submit(execute_batch, batched, base, cases) if batched else None
        futures = {f.name: pool.submit(execute, f, base, cases[f.name]) for f in todo if not f.batched}
        outcomes = {name: future.result() for name, future in futures.items()}
        outcomes.update(batch.result() if batch else {})
    return {f.name: outcomes[f.name] for f in todo}


def installed(fault: Fault) -> bool:
    """Whether the program the case drives is on PATH (always, for cases that drive none)."""
    return fault.requires is None or shutil.which(fault.requires) is not None


# --- judging ----------------------------------------------------------------------------------------------

def answer_lines(outcome: Outcome, code: int) -> list[str]:
    prefix = "error: " if code else "warning: "
    return [line for line in outcome.stderr.splitlines() if line.startswith(prefix)]


def kept_records(base: Path, run_dir: Path, count: int) -> list[str]:
    """Finished prompts of the base run whose record or scores differ (or are gone) in `run_dir`."""
    lost = []
    for prompt_id in range(count):
        before = json.loads((base / "prompts" / f"{prompt_id}.json").read_text())
        after_path = run_dir / "prompts" / f"{prompt_id}.json"
        if not after_path.is_file() or timeless(json.loads(after_path.read_text())) != timeless(before):
            lost.append(f"{prompt_id}.json")
    return lost


def judge(fault: Fault, outcome: Outcome) -> list[str]:
    """What is wrong with the answer to a fault (empty when it is right)."""
    problems = []
    if outcome.returncode != fault.code:
        problems.append(f"exit code {outcome.returncode}, expected {fault.code}")
    if "Traceback" in outcome.stderr + outcome.stdout:
        problems.append("a traceback was printed")
    lines = answer_lines(outcome, fault.code)
    if fault.message and (len(lines) != 1 or not re.search(fault.message, lines[0])):
        problems.append(f"expected one line matching {fault.message!r}, got {lines or outcome.stderr[-600:]!r}")
    if outcome.lost:
        problems.append(f"finished records changed or lost: {outcome.lost}")
    if outcome.unmet:
        problems.append(outcome.unmet)
    return problems


def markdown_table(outcomes: dict[str, Outcome]) -> str:
    rows = ["| fault | exit code | answer (one line) | seconds |", "|---|---:|---|---:|"]
    for fault in FAULTS:
        if fault.name not in outcomes:
            why = f"needs {fault.requires}" if not installed(fault) else "needs root"
            rows.append(f"| {fault.name} | {fault.code} | ({why}; not run) | |")
            continue
        outcome = outcomes[fault.name]
        lines = answer_lines(outcome, outcome.returncode) or [outcome.stdout.strip().splitlines()[-2]
                                                               if outcome.stdout.strip() else ""]
        text = re.sub(r"/tmp/\S*?/case\d+", "<case>", lines[0]).replace("|", "\\|") or "(nothing printed)"
        seconds = f"{outcome.seconds:.1f}" + (" (batched)" if fault.batched else "")
        rows.append(f"| {fault.name} | {outcome.returncode} | `{text}` | {seconds} |")
    return "\n".join(rows) + "\n"


def document(table: str, count: int, seconds: float) -> str:
    """docs/fault_matrix.md: how to read and regenerate the table, then the table."""
    import platform

    return "\n".join([
        "# Fault matrix: every bad input or fault gets one line, a documented exit code, and loses nothing", "",
        "Each row is a command run by `tests/run_integrity/test_fault_matrix.py` against a fresh copy of one finished,",
        "scored run folder (2 prompts, tiny SD, K = 2), or in a new folder where the row's settings are another",
        "experiment. The test asserts, for every row: the exit code; exactly one `error:` line on stderr (`warning:`",
        "for the two faults that the run repairs itself) matching the message; no traceback; and that every finished",
        "prompt's record and evaluator scores are unchanged afterwards. Exit codes: 0 success, 2 any user error or",
        "fault (including a sweep with failed jobs), 130 Ctrl-C; 1 with a traceback only for a bug",
        "([CONVENTIONS.md](CONVENTIONS.md)). `<case>` stands for the case's temporary folder. Rows name a module",
        "(`bank`, `merge`, ...) or a script when they run it instead of `run.py`. The human-eval server answers over",
        "HTTP, not with exit codes: an image swapped for a symlink pointing outside after start (404) and a 50 MB",
        "vote body (413, unread) are tested in `tests/human_eval/test_human_eval_server.py`.", "",
        f"Regenerate: `.venv/bin/python -m tests.run_integrity.fault_cases --out docs/fault_matrix.md` (as root: the",
        "read-only folder and full-disk rows mount a small tmpfs). Measured: "
        f"{count} faults in {seconds:.0f} s, two commands at a time, on {os.cpu_count()} cores "
        f"({platform.machine()}, Python {platform.python_version()}); seconds per row include Python, torch and",
        "diffusers start-up and, where the run gets that far, loading the tiny model. Rows marked *batched* run",
        "one after another in one shared process (`tests/run_integrity/batch.py`), each as its own `__main__` with",
        "its own arguments; their seconds exclude that process's start-up.", "", table])


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m tests.run_integrity.fault_cases", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcomes = run_matrix(Path(tmp))
        failed = {name: judge(next(f for f in FAULTS if f.name == name), o) for name, o in outcomes.items()}
        table = markdown_table(outcomes)
        total = time.perf_counter() - start
    print(table)
    print(f"{len(outcomes)} faults in {total:.0f}s; wrong answers: {sum(bool(v) for v in failed.values())}")
    for name, problems in failed.items():
        for problem in problems:
            print(f"  {name}: {problem}")
    if args.out:
        args.out.write_text(document(table, len(outcomes), total))
    return 0 if not any(failed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
