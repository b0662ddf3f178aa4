"""The W&B logger: offline files hold what was logged, disabled writes nothing, W&B failures never raise."""
from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from noise_exp.logging import NullLogger, RunLogger, WandbLogger
from noise_exp.logging.wandb_logger import sweep_group
from tests.logging.wandb_files import isolate_wandb, logged, read_complete_log

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"model": {"name": "tiny_sdxl", "num_steps": 4}, "method": {"name": "optimize", "lr": 100.0},
          "out": Path("/tmp/x")}


@pytest.fixture(autouse=True)
def isolated_wandb(monkeypatch, tmp_path):
    isolate_wandb(monkeypatch, tmp_path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_run_folder(run_dir: Path) -> tuple[list[dict], list[dict], list[tuple[str, Path, Path]]]:
    (run_dir / "images").mkdir(parents=True)
    for variant, color in (("stable", (200, 40, 40)), ("unstable", (40, 40, 200))):
        Image.new("RGB", (32, 32), color).save(run_dir / "images" / f"3_{variant}.png")
    rows = [{"dataset": "drawbench", "prompt_id": 3, "prompt": "a red cube", "variant": variant, "seed": seed,
             "stability": stability, "image": f"images/3_{variant}.png", "noise": "", "time_s": 0.5,
             "hpsv2": score}
            for variant, seed, stability, score in (("stable", 7, 0.93, 0.27), ("unstable", 2, 0.41, 0.22))]
    trace = [{"prompt_id": 3, "step": step, "stability": 0.5 + 0.1 * step, "lr": 100.0} for step in range(4)]
    pairs = [("3: stable vs unstable", Path("images/3_stable.png"), Path("images/3_unstable.png"))]
    return rows, trace, pairs


def summary_frames() -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    table = pd.DataFrame({"Dataset": ["drawbench", "drawbench"], "Noise": ["Unstable noise", "Stable noise"],
                          "HPS v2": [0.22, 0.27], "Average": [0.22, 0.27]})
    rates = pd.DataFrame({"dataset": ["drawbench"] * 2, "a": ["stable"] * 2, "b": ["unstable"] * 2,
                          "metric": ["hpsv2", "aes"], "n": [10, 10], "win_rate": [0.7, 0.55],
                          "ci_low": [0.4, 0.3], "ci_high": [0.9, 0.8]})
    return {"table1": table}, {"winning_rates": rates}


def test_offline_run_writes_its_files_with_the_logged_keys(tmp_path):
    run_dir = tmp_path / "run"
    rows, trace, pairs = make_run_folder(run_dir)
    logger = WandbLogger(project="noise-exp-test", mode="offline", group="sweep-a")
    logger.start(CONFIG, run_dir)
    assert logger.active
    logger.log_prompt(rows, trace, pairs)
    tables, rates = summary_frames()
    logger.log_summary(tables, rates)
    logger.finish()
    logger.finish()  # twice is harmless

    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and logger.offline_run_dir == offline[0]
    transaction_logs = list(offline[0].glob("run-*.wandb"))
    assert len(transaction_logs) == 1 and transaction_logs[0].stat().st_size > 0

    history, config, summary = logged(read_complete_log(transaction_logs[0]))
    assert {"prompt_index", "prompt_id", "stable/stability", "unstable/stability", "stable/hpsv2",
            "trace/final_stability", "image_pairs", "results", "optimization_trace", "image_pair_table",
            "tables/table1", "winning_rates/winning_rates/table"} <= history
    # a chart's data is logged as <key>_table, its spec goes to the run config
    assert {"stability_trace_table", "winning_rates/winning_rates/drawbench_stable_unstable_table"} <= history
    assert any("stability_trace" in value for value in config["_wandb"])
    assert "stable/seed" not in history  # identifiers are not plotted
    method = json.loads(config["method"][-1])
    assert method.get("value", method)["lr"] == 100.0
    assert {"winning_rate/drawbench_stable_unstable/hpsv2", "table1/drawbench/Stable noise/HPS v2"} <= summary

    media = offline[0] / "files" / "media"
    results = json.loads(next((media / "table").glob("results_*.table.json")).read_text())
    assert {"prompt_id", "variant", "stability", "hpsv2", "preview"} <= set(results["columns"])
    assert len(results["data"]) == 2
    assert len(list((media / "images").rglob("*.png"))) >= 2


def test_disabled_mode_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    rows, trace, pairs = make_run_folder(run_dir)
    before = set(tmp_path.rglob("*"))
    logger = WandbLogger(mode="disabled")
    logger.start(CONFIG, run_dir)
    logger.log_prompt(rows, trace, pairs)
    logger.log_summary(*summary_frames())
    logger.finish()
    assert not logger.active
    assert set(tmp_path.rglob("*")) == before


def test_unreachable_server_falls_back_to_offline_without_raising(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    run_dir = tmp_path / "run"
    rows, trace, pairs = make_run_folder(run_dir)
    logger = WandbLogger(mode="online", init_timeout_s=3, finish_timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="noise_exp.logging"):
        logger.start(CONFIG, run_dir)
        logger.log_prompt(rows, trace, pairs)
        logger.finish()
    assert "logging offline" in caplog.text
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


@pytest.mark.parametrize("case", ["no api key", "unreachable, no fallback", "unknown mode", "init raises"])
def test_misconfigured_wandb_never_raises(tmp_path, monkeypatch, caplog, case):
    run_dir = tmp_path / "run"
    rows, trace, pairs = make_run_folder(run_dir)
    options = {"mode": "online", "offline_fallback": False, "init_timeout_s": 3}
    if case == "unreachable, no fallback":
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
        monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    elif case == "unknown mode":
        options["mode"] = "onlin"
    elif case == "init raises":
        import wandb

        def broken_init(*args, **kwargs):
            raise RuntimeError("simulated W&B failure")

        monkeypatch.setattr(wandb, "init", broken_init)
        options["mode"] = "offline"
    logger = WandbLogger(**options)
    with caplog.at_level(logging.WARNING, logger="noise_exp.logging"):
        logger.start(CONFIG, run_dir)
        logger.log_prompt(rows, trace, pairs)
        logger.log_summary(*summary_frames())
        logger.finish()
    assert not logger.active
    assert "W&B" in caplog.text or "logger.mode" in caplog.text


def test_bad_inputs_become_warnings(tmp_path, caplog):
    run_dir = tmp_path / "run"
    rows, trace, _ = make_run_folder(run_dir)
    logger = WandbLogger(mode="offline")
    logger.start(CONFIG, run_dir)
    with caplog.at_level(logging.WARNING, logger="noise_exp.logging"):
        logger.log_prompt(rows, trace, [("missing", Path("images/nope.png"), Path("images/3_stable.png"))])
        logger.log_prompt([{"variant": "stable", "stability": float("nan"), "odd": object()}], [], [])
        logger.log_summary({"broken": "not a frame"}, {"rates": pd.DataFrame({"x": [1]})})  # type: ignore[dict-item]
        logger.finish()
    assert "missing" in caplog.text and "log_summary failed" in caplog.text
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def test_sweep_group_is_the_sweep_folder(tmp_path):
    sweep = tmp_path / "multirun" / "2024-11-25" / "08-00-22_select_tiny_sdxl"
    (sweep / "0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    assert sweep_group(sweep / "0") == sweep_group(sweep) == "2024-11-25_08-00-22_select_tiny_sdxl"
    assert sweep_group(tmp_path / "outputs" / "single") is None


@pytest.mark.parametrize("option, expected", [("none", NullLogger), ("wandb", WandbLogger)])
def test_logger_group_composes_and_instantiates(option, expected):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf" / "logger")):
        cfg = compose(config_name=option)
    logger = instantiate(cfg)
    assert isinstance(logger, expected) and isinstance(logger, RunLogger)
    if option == "wandb":
        assert logger.mode == "offline" and logger.group is None


def test_sweep_job_name_is_its_swept_settings(tmp_path):
    """Keys swept on the command line or under hydra.sweeper.params (as experiment=fig8 does), result keys only."""
    import yaml

    from noise_exp.logging.wandb_logger import sweep_job_name, swept_keys

    sweep = tmp_path / "multirun"
    (sweep / "3" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "overrides": {"task": ["experiment=fig8", "model.num_steps=5,10", "evaluator=[hpsv2],[aes]", "dataset.limit=2"]},
        "sweeper": {"params": {"method.lr": "0.1,100.0"}}}}))
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        ["experiment=fig8", "model.num_steps=10", "evaluator=[aes]", "dataset.limit=2", "method.lr=100.0"]))
    assert swept_keys(sweep) == ["model.num_steps", "evaluator", "method.lr"]
    assert sweep_job_name(sweep / "3") == "num_steps=10,lr=100"
    assert sweep_job_name(tmp_path / "outputs" / "single") is None
