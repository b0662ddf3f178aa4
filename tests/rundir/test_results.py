"""results.csv in the run folder: one discovery of run folders (merge, the compare table and the human-eval pairs
use it), one reader, and the `score` CLI refreshing a run's report (score_run itself leaves it alone)."""
from __future__ import annotations

import pandas as pd
import pytest

from noise_exp import score as score_cli
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.ssim import SSIM
from noise_exp.human_eval.pairs import build_pairs
from noise_exp.merge import merge_runs
from noise_exp.report import write_report
from noise_exp.rundir.results import find_runs, read_results
from noise_exp.rundir.scoring import score_run
from tests.support.runs import write_synthetic_run

PROMPTS = {"drawbench": ["a photo of a cat", "a red car"]}


def test_find_runs_skips_merges_and_hidden_folders_and_a_run_is_its_own_only_run(tmp_path):
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        write_synthetic_run(sweep / job, PROMPTS, ("stable", "unstable"))
    merged = merge_runs(sweep, pool=True)  # the synthetic jobs share their prompts
    assert merged == sweep / "merged" and (merged / "results.csv").is_file()
    write_synthetic_run(sweep / ".trash" / "old", PROMPTS, ("stable", "unstable"))
    write_synthetic_run(sweep / "0" / "nested", PROMPTS, ("stable",))
    assert find_runs(sweep) == [sweep / "0", sweep / "0" / "nested", sweep / "1"]
    assert find_runs(sweep / "0") == [sweep / "0"]
    # merging again reads the two jobs (and the nested one), never the earlier merge
    assert len(read_results(merge_runs(sweep, pool=True))) == 2 * 2 * 2 + 2  # jobs x prompts x variants + nested
    # the human-eval page serves the same runs: 2 prompts x stable-vs-unstable in each job, none from merged/
    assert sorted({pair.run for pair in build_pairs(sweep).pairs}) == ["0", "1"]
    with pytest.raises(NoiseExpError, match="no run folders with results.csv in .* not a run or sweep folder"):
        find_runs(tmp_path / "sweep" / ".trash" / "old" / "images")
    with pytest.raises(NoiseExpError, match="is not a folder"):
        find_runs(tmp_path / "missing")


def test_read_results_names_the_file_and_what_is_wrong(tmp_path):
    run = write_synthetic_run(tmp_path / "run", PROMPTS, ("stable",))
    assert list(read_results(run)["variant"]) == ["stable", "stable"]
    pd.read_csv(run / "results.csv").drop(columns=["image", "prompt"]).to_csv(run / "results.csv", index=False)
    with pytest.raises(NoiseExpError, match=r"results.csv lacks column\(s\) image, prompt"):
        read_results(run)
    (run / "results.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(NoiseExpError, match="cannot read .*results.csv"):
        read_results(run)


def test_the_score_cli_refreshes_the_report_and_score_run_does_not(tmp_path):
    run = write_synthetic_run(tmp_path / "run", PROMPTS, ("stable", "unstable"), with_reference=True)
    write_report([run], run / "report")
    score_run(run, {"ssim": SSIM()})
    assert "ssim" not in pd.read_csv(run / "report" / "means.csv").columns
    assert score_cli.main([str(run), "evaluator=[ssim]"]) == 0
    means = pd.read_csv(run / "report" / "means.csv")
    assert means["ssim"].tolist() == pytest.approx(read_results(run).groupby("variant", sort=False)["ssim"].mean()
                                                   .reindex(means["variant"]).tolist())
