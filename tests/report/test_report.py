"""The report on synthetic run folders: means, winning-rate arithmetic, CI, files, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from noise_exp.errors import NoiseExpError
from noise_exp.report import wilson_interval, winning_rates, write_report
from noise_exp.report.__main__ import main as report_main
from noise_exp.report.tables import load_runs, mean_table
from tests.support.runs import write_synthetic_run

PROMPTS = {"drawbench": ["a cat", "a dog", "a red car", "a tree"], "pickapic": ["a house", "a blue bird"]}
# prompt ids: drawbench 0-3, pickapic 4-5
HPS = {"stable": [1.0, 2.0, 3.0, 4.0, 10.0, 11.0], "unstable": [0.0, 2.0, 5.0, 1.0, 9.0, 12.0],
       "baseline": [0.5, 2.5, 3.0, 3.0, 10.0, 10.0]}
LPIPS = {"stable": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "unstable": [0.2, 0.2, 0.1, 0.5, 0.4, 0.7],
         "baseline": [0.1] * 6}


def metrics(values, datasets=("drawbench",) * 4 + ("pickapic",) * 2):
    return {(datasets[i], i, variant): v for variant, column in values.items() for i, v in enumerate(column)}


@pytest.fixture
def run(tmp_path):
    paper = {"hpsv2": metrics(HPS), "aes": metrics({k: [5.0] * 6 for k in HPS}),
             "pickscore": metrics({k: [20.0] * 6 for k in HPS}), "imagereward": metrics({k: [1.0] * 6 for k in HPS}),
             "lpips": metrics(LPIPS)}
    return write_synthetic_run(tmp_path / "run", PROMPTS, ("stable", "unstable", "baseline"), metrics=paper)


def rate(rates, dataset, a, b, metric):
    row = rates[(rates.dataset == dataset) & (rates.a == a) & (rates.b == b) & (rates.metric == metric)]
    assert len(row) == 1
    return row.iloc[0]


def test_winning_rates_against_hand_counts(run):
    rates = winning_rates(load_runs([run]))
    # drawbench hpsv2 stable vs unstable: 1>0 win, 2=2 tie, 3<5 loss, 4>1 win -> (2 + 0.5) / 4
    row = rate(rates, "drawbench", "stable", "unstable", "hpsv2")
    assert (row.n, row.wins, row.ties, row.losses) == (4, 2, 1, 1)
    assert row.win_rate == pytest.approx(0.625)
    # pickapic: 10>9 win, 11<12 loss -> 0.5
    assert rate(rates, "pickapic", "stable", "unstable", "hpsv2").win_rate == pytest.approx(0.5)
    # stable vs baseline on drawbench: 1>0.5 win, 2<2.5 loss, 3=3 tie, 4>3 win -> 0.625
    assert rate(rates, "drawbench", "stable", "baseline", "hpsv2").win_rate == pytest.approx(0.625)
    # LPIPS: lower wins. drawbench stable vs unstable: .1<.2 win, tie, .3>.1 loss, .4<.5 win -> 0.625
    assert rate(rates, "drawbench", "stable", "unstable", "lpips").win_rate == pytest.approx(0.625)
    # constant metrics tie everywhere -> exactly one half
    assert rate(rates, "drawbench", "stable", "unstable", "aes").ties == 4
    assert rate(rates, "drawbench", "stable", "unstable", "aes").win_rate == 0.5
    # no optimized/original variants -> no such comparison
    assert not ((rates.a == "optimized") | (rates.b == "original")).any()
    # Wilson 95 % interval of 2.5 / 4 by hand: z = 1.95996, centre = (0.625 + z^2/8) / (1 + z^2/4) = 0.563763,
    # half width = z sqrt(0.625 * 0.375 / 4 + z^2/64) / (1 + z^2/4) = 0.344337
    assert (row.ci_low, row.ci_high) == pytest.approx((0.219427, 0.908101), abs=1e-6)
    # pickapic: 1 win, 1 loss: scipy's Wilson interval of 1 / 2
    pickapic = rate(rates, "pickapic", "stable", "unstable", "hpsv2")
    assert (pickapic.ci_low, pickapic.ci_high) == pytest.approx((0.094531, 0.905469), abs=1e-6)


def test_wilson_interval_matches_scipy_and_closed_form():
    from scipy.stats import binomtest

    for k, n in [(7, 10), (0, 5), (5, 5), (57, 100), (1, 3), (10, 10)]:
        expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)
    # half successes (ties): closed form with p = 0.625, n = 4, z = 1.96
    z, p, n = 1.959963984540054, 0.625, 4
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(2.5, 4) == pytest.approx((centre - half, centre + half))
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_table_and_paper_average(run):
    means = mean_table(load_runs([run])).set_index(["dataset", "variant"])
    assert list(means.index.get_level_values("variant")[:3]) == ["unstable", "stable", "baseline"]
    assert means.loc[("drawbench", "stable"), "hpsv2"] == pytest.approx(2.5)
    assert means.loc[("drawbench", "unstable"), "hpsv2"] == pytest.approx(2.0)
    assert means.loc[("pickapic", "baseline"), "hpsv2"] == pytest.approx(10.0)
    # Average = mean of HPS v2, AES, PickScore, ImageReward (as in Tables 1-2): (2.5 + 5 + 20 + 1) / 4
    assert means.loc[("drawbench", "stable"), "average"] == pytest.approx(7.125)
    assert means.loc[("drawbench", "stable"), "n"] == 4


def test_paper_table_1_average_is_reproduced():
    """The Average column of Table 1 (Pick-a-Pic, stable) from its four numbers."""
    frame = pd.DataFrame({"run": "r", "dataset": "pickapic", "prompt_id": [0], "variant": ["stable"],
                          "hpsv2": [27.4934], "aes": [5.9960], "pickscore": [21.6372], "imagereward": [0.8981]})
    assert mean_table(frame)["average"].iloc[0] == pytest.approx(14.0062, abs=1e-4)


def test_write_report_files(run, tmp_path):
    result = write_report([run], tmp_path / "report")
    for name in ["means_csv", "means_md", "winning_rates_csv", "winning_rates_md", "winning_rates_png",
                 "grid_stable_vs_unstable", "grid_stable_vs_baseline", "report_md"]:
        assert result.files[name].is_file() and result.files[name].stat().st_size > 0, name
    assert result.markdown == result.files["report_md"] and "Wilson" in result.markdown.read_text()
    markdown = result.files["means_md"].read_text()
    assert markdown.splitlines()[0] == ("| Dataset | Noise | HPS v2 | AES | PickScore | ImageReward | LPIPS ↓ "
                                        "| Average | Stability |")
    results = pd.read_csv(run / "results.csv")
    stability = results[(results.dataset == "drawbench") & (results.variant == "stable")]["stability"].mean()
    assert (f"| drawbench | Stable noise | 2.5000 | 5.0000 | 20.0000 | 1.0000 | 0.2500 | 7.1250 | {stability:.4f} |"
            in markdown)
    on_disk = pd.read_csv(result.files["winning_rates_csv"])
    assert len(on_disk) == len(result.winning_rates) == 2 * 2 * 6  # datasets x comparisons x (5 metrics + stability)
    assert list(on_disk.columns) == ["dataset", "a", "b", "metric", "n", "wins", "ties", "losses", "win_rate",
                                     "ci_low", "ci_high", "tie_tolerance"]
    assert (on_disk.metric == "stability").sum() == 4
    grid = Image.open(result.files["grid_stable_vs_unstable"])
    assert grid.width == 2 * 256 + 3 * 6  # A and B side by side, no prompt column
    pixels = np.asarray(grid.convert("L"))
    assert pixels.std() > 10  # images were pasted, not a blank canvas
    chart = Image.open(result.files["winning_rates_png"])
    assert chart.size[0] > 300 and np.asarray(chart.convert("L")).std() > 10


def test_merged_sweep_pools_prompts_and_pairs_within_runs(run, tmp_path):
    second = write_synthetic_run(tmp_path / "shard2", {"drawbench": ["x", "y"]}, ("stable", "unstable"),
                                 metrics={"hpsv2": {("drawbench", 0, "stable"): 1.0, ("drawbench", 0, "unstable"): 2.0,
                                                    ("drawbench", 1, "stable"): 3.0, ("drawbench", 1, "unstable"): 2.0}})
    # neither run records its settings, so both are one setting in which prompts 0-1 appear twice: refused ...
    with pytest.raises(NoiseExpError, match=r"dataset drawbench prompt 0 \(variant stable\) appears twice .*"
                                            r"in runs .*run, .*shard2: the runs overlap"):
        write_report([run, second], tmp_path / "sweep")
    # ... unless pooled on purpose
    result = write_report([run, second], tmp_path / "sweep", pool=True)
    row = rate(result.winning_rates, "drawbench", "stable", "unstable", "hpsv2")
    # run: 2 wins, 1 tie, 1 loss; shard2 (same prompt ids 0-1, paired within the shard): 1 loss, 1 win
    assert (row.n, row.wins, row.ties) == (6, 3, 1)
    assert row.win_rate == pytest.approx(3.5 / 6)


def test_cli(run, tmp_path, capsys):
    assert report_main([str(run), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").is_file()
    assert "Stable noise" in capsys.readouterr().out
    assert report_main([str(tmp_path / "missing")]) == 2


def test_duplicate_variant_rows_are_an_error(run):
    frame = pd.read_csv(run / "results.csv")
    pd.concat([frame, frame.iloc[:1]]).to_csv(run / "results.csv", index=False)
    with pytest.raises(NoiseExpError, match="appears twice"):
        winning_rates(load_runs([run]))


def test_wilson_bounds_contain_the_rate_at_the_extremes():
    from noise_exp.report.tables import wilson_interval

    for successes, n in [(10, 10), (0, 3), (50, 50), (0, 50), (7, 10)]:
        low, high = wilson_interval(successes, n)
        assert 0.0 <= low <= successes / n <= high <= 1.0
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 3)[0] == 0.0


def test_tie_tolerance_turns_a_saturated_comparison_into_ties_and_leaves_a_clear_one(tmp_path):
    """digit_classifier 0.9991 vs 0.9996 (saturated) is within conf/config.yaml's 1e-3: a tie; 0.2 vs 0.9 is not."""
    from noise_exp.report.sweep import tie_tolerances

    prompts = {"digits": ["a handwritten digit 1", "a handwritten digit 2", "a handwritten digit 3"]}
    scores = {("digits", 0, "stable"): 0.9991, ("digits", 0, "unstable"): 0.9996,
              ("digits", 1, "stable"): 0.9998, ("digits", 1, "unstable"): 0.9990,
              ("digits", 2, "stable"): 0.9, ("digits", 2, "unstable"): 0.2}
    run = write_synthetic_run(tmp_path / "run", prompts, ("stable", "unstable"),
                              metrics={"digit_classifier": scores})
    assert tie_tolerances([run]) == {"digit_classifier": 1e-3, "shapes_reward": 1e-3}
    result = write_report([run], tmp_path / "report")
    rate = result.winning_rates.set_index("metric").loc["digit_classifier"]
    assert (rate["wins"], rate["ties"], rate["losses"], rate["tie_tolerance"]) == (1, 2, 0, 1e-3)
    assert rate["win_rate"] == pytest.approx(2 / 3)
    exact = write_report([run], tmp_path / "exact", tie_tolerance={"digit_classifier": 0.0})
    rate = exact.winning_rates.set_index("metric").loc["digit_classifier"]
    assert (rate["wins"], rate["ties"], rate["losses"]) == (2, 0, 1)  # without it, 4th-decimal noise decides
    assert ("Ties (half a win): digit_classifier |A - B| <= 0.001; other metrics: |A - B| <= 1e-06"
            in result.markdown.read_text())


def test_runs_that_disagree_on_a_tie_tolerance_are_refused_unless_one_is_given(tmp_path):
    from noise_exp.report.sweep import tie_tolerances

    runs = [write_synthetic_run(tmp_path / str(i), {"digits": ["a"]}, ("stable", "unstable"), config={
        "report": {"tie_tolerance": {"digit_classifier": value}}}) for i, value in enumerate((1e-3, 1e-2))]
    with pytest.raises(NoiseExpError, match=r"disagree on report.tie_tolerance.digit_classifier \(0.001 in .*0, "
                                            r"0.01 in .*1\); pass --tie-tolerance digit_classifier=<value>"):
        tie_tolerances(runs)
    assert tie_tolerances(runs, {"digit_classifier": 0.005}) == {"digit_classifier": 0.005}


def test_grid_shows_images_of_at_least_256_px_sharp_with_stability_and_every_score(run, tmp_path):
    from noise_exp.report.figures import grid_rows, image_grid
    from noise_exp.report.tables import METRIC_LABELS

    frame = load_runs([run])
    scorers = ["hpsv2", "aes", "pickscore", "imagereward", "lpips"]
    rows = grid_rows(frame, {str(run): run}, "stable", "unstable", scorers)
    assert len(rows) == 6
    for row, prompt_id in zip(rows, range(6)):
        part = frame[frame["prompt_id"] == prompt_id].set_index("variant")
        assert row.prompt == f"[{part['dataset'].iloc[0]} #{prompt_id}] {part['prompt'].iloc[0]}"
        for side, caption in (("stable", row.caption_a), ("unstable", row.caption_b)):
            assert caption == tuple(f"{METRIC_LABELS[c]} {part.loc[side, c]:.4f}" for c in ["stability", *scorers])
    path = image_grid(frame, {str(run): run}, "stable", "unstable", tmp_path / "grid.png", max_rows=2,
                      metrics=scorers)
    grid = Image.open(path).convert("RGB")
    pad, line = 6, 16
    block = line + pad + 256 + pad + 6 * line + 2 * pad  # prompt line, image, 6 caption lines
    assert grid.size == (2 * 256 + 3 * pad, line + 2 * pad + 2 * block)
    top = line + 2 * pad + line + pad  # first row's images
    with Image.open(rows[0].image_a) as source:  # 32 px upscaled 8x, nearest neighbour: every pixel kept
        expected = np.asarray(source.convert("RGB").resize((256, 256), Image.NEAREST))
    assert np.array_equal(np.asarray(grid.crop((pad, top, pad + 256, top + 256))), expected)
    under = np.asarray(grid.crop((pad, top + 256 + pad, pad + 256, top + 256 + pad + 6 * line)).convert("L"))
    assert (under < 100).sum() > 200  # six lines of text under the image


def test_each_metric_counts_the_way_its_run_folder_records_and_runs_that_disagree_are_refused(run, tmp_path):
    """metrics.json decides which way a metric wins and which column is marked ↓; a folder without it (scored
    before it existed) counts lpips lower, every other metric higher; two runs recording one metric both ways stop
    the report and the merge with one error naming both."""
    from noise_exp.merge import merge_runs
    from noise_exp.rundir.metrics import record_directions

    assert not (run / "metrics.json").exists()  # an old folder: the legacy rule
    old = write_report([run], tmp_path / "old")
    assert rate(old.winning_rates, "drawbench", "stable", "unstable", "lpips").win_rate == pytest.approx(0.625)
    assert "| HPS v2 | AES | PickScore | ImageReward | LPIPS ↓ |" in old.files["means_md"].read_text()
    record_directions(run, {"hpsv2": False, "lpips": False})
    new = write_report([run], tmp_path / "new")
    # hpsv2 read lower-is-better: 1>0 loss, 2=2 tie, 3<5 win, 4>1 loss -> (1 + 0.5) / 4
    row = rate(new.winning_rates, "drawbench", "stable", "unstable", "hpsv2")
    assert (row.wins, row.ties, row.losses, row.win_rate) == (1, 1, 2, 0.375)
    assert rate(new.winning_rates, "drawbench", "stable", "unstable", "lpips").win_rate == pytest.approx(0.625)
    assert "| HPS v2 ↓ | AES | PickScore | ImageReward | LPIPS ↓ |" in new.files["means_md"].read_text()
    assert rate(winning_rates(load_runs([run])), "drawbench", "stable", "unstable", "hpsv2").win_rate == 0.375

    sweep = tmp_path / "sweep"
    (sweep / "a").parent.mkdir()
    run.rename(sweep / "a")
    other = write_synthetic_run(sweep / "b", PROMPTS, ("stable", "unstable"), metrics={"hpsv2": metrics(HPS)})
    record_directions(other, {"hpsv2": True})
    disagree = r"a/metrics.json records hpsv2 as lower-is-better but .*b/metrics.json as higher-is-better"
    with pytest.raises(NoiseExpError, match=disagree):
        write_report([sweep / "a", other], tmp_path / "both", pool=True)
    with pytest.raises(NoiseExpError, match=disagree):
        merge_runs(sweep, pool=True)
    assert not (sweep / "merged").exists()
    record_directions(other, {"hpsv2": False})  # rescored the same way: the merge records the directions it read
    merge_runs(sweep, pool=True)
    assert json.loads((sweep / "merged" / "metrics.json").read_text()) == {
        "hpsv2": {"higher_is_better": False}, "lpips": {"higher_is_better": False}}
    (other / "metrics.json").write_text('{"hpsv2": {"higher_is_better": "no"}}')
    with pytest.raises(NoiseExpError, match=r"b/metrics.json is not a record of metric directions"):
        write_report([other], tmp_path / "broken")
