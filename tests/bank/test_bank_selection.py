"""method=select with bank.path on the small digits model: reuse, queries equal to fresh selections, scopes kept
apart, candidates scored, compute measured."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from noise_exp.candidates import CandidateBank
from noise_exp.bank.__main__ import main as bank_main
from noise_exp.errors import NoiseExpError
from noise_exp.methods.registry import run_pairs
from noise_exp.report import write_report
from noise_exp.rundir.declaration import read_declaration
from tests.support.bank import SCORERS, run_digits
from tests.conftest import compose_cfg

@pytest.fixture(scope="module", autouse=True)
def needs_digits_model():
    if not (Path(compose_cfg(["model=small_digits"]).model.pretrained) / "model_index.json").exists():
        pytest.skip("the small digits model is not trained (make train-small)")


def kept(run_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / "results.csv")
    return frame.set_index(["prompt_id", "variant"])[["seed", "stability"]].sort_index()


@dataclass
class Banked:
    run: Path  # a selection run (2 prompts, K=5, T=2) made with bank.path
    bank: Path
    metrics: dict


@pytest.fixture(scope="module")
def banked(tmp_path_factory) -> Banked:
    """One banked run shared by the tests that only read it (they copy the bank before adding to it)."""
    root = tmp_path_factory.mktemp("banked")
    return Banked(root / "run", root / "bank", run_digits(root / "run", root / "bank"))


def test_a_rerun_with_the_same_key_computes_nothing_new(banked, tmp_path, capsys):
    bank = tmp_path / "bank"
    shutil.copytree(banked.bank, bank)
    files = CandidateBank(bank).files()
    assert (banked.metrics["bank_reused"], banked.metrics["bank_computed"]) == (0, 10)
    assert len(CandidateBank(bank).read().frame) == 10
    capsys.readouterr()
    second = run_digits(tmp_path / "second", bank)
    assert (second["bank_reused"], second["bank_computed"]) == (10, 0)
    assert CandidateBank(bank).files() == files  # a writer with nothing to add writes no file
    assert "| bank: reused 10, computed 0 candidates" in capsys.readouterr().out
    pd.testing.assert_frame_equal(kept(banked.run), kept(tmp_path / "second"))
    # the selection_scores of the reusing run are the bank's, for all K seeds
    scores = pd.read_csv(tmp_path / "second" / "selection_scores.csv")
    assert len(scores) == 10 and scores.equals(pd.read_csv(banked.run / "selection_scores.csv"))
    # a run of 7 seeds computes only the 2 the bank lacks, per prompt
    third = run_digits(tmp_path / "third", bank, seeds=7)
    assert (third["bank_reused"], third["bank_computed"]) == (10, 4)


def test_a_query_equals_a_fresh_selection_run_with_the_same_seeds(banked, tmp_path, capsys):
    run_digits(tmp_path / "fresh", None)  # no bank: plain Algorithm 1
    out = tmp_path / "query"
    assert bank_main(["select", str(banked.run), "--by", "stability", "--by", "unstable", "--images", "none",
                      "--out", str(out)]) == 0
    fresh, query = kept(tmp_path / "fresh"), kept(out)
    pd.testing.assert_frame_equal(fresh, query)  # same seed, same score, exactly
    results = pd.read_csv(out / "results.csv")
    assert (results["unet_calls"] == 5 * 2 * (2 + 1)).all()  # K x T x (2 CFG passes + 1 inversion pass)
    assert (out / "report" / "means.md").is_file()
    # the bank folder itself answers the same (one prompt per text; two texts here)
    assert bank_main(["select", str(banked.bank), "--by", "stability", "--images", "none", "--out",
                      str(tmp_path / "query_bank")]) == 0
    by_text = pd.read_csv(tmp_path / "query_bank" / "results.csv").set_index("prompt")
    for _, row in pd.read_csv(tmp_path / "fresh" / "results.csv").query("variant == 'stable'").iterrows():
        assert (by_text.loc[row["prompt"], "seed"], by_text.loc[row["prompt"], "stability"]) == (row["seed"],
                                                                                                   row["stability"])


def _rewrite_model_configs(bank: Path, edit) -> None:
    """Rewrite the model configs stored in each of the bank's parquet files, as an older version wrote them."""
    import pyarrow.parquet as pq

    from noise_exp.candidates.storage import METADATA

    for path in CandidateBank(bank).files():
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[METADATA])
        meta["model_configs"] = {digest: edit(config) for digest, config in meta["model_configs"].items()}
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, METADATA: json.dumps(meta)}), path)


def test_a_bank_naming_a_moved_builder_still_regenerates_its_images(banked, tmp_path):
    """Banks written before issue 21 name the digits builder by its old path (noise_exp.config.LEGACY_TARGETS)."""
    legacy = tmp_path / "legacy_bank"
    shutil.copytree(banked.bank, legacy)
    old = "noise_exp.models.digits.DigitsPipelineBuilder"
    _rewrite_model_configs(legacy, lambda config: {**config, "builder": {**config["builder"], "_target_": old}})
    assert [c["builder"]["_target_"] for c in CandidateBank(legacy).read().model_configs.values()] == [old]
    images = {}
    for name, bank in (("legacy", legacy), ("current", banked.bank)):
        assert bank_main(["select", str(bank), "--by", "stability", "--images", "regenerate",
                          "--out", str(tmp_path / name)]) == 0
        images[name] = sorted((tmp_path / name / "images").glob("*.png"))
    assert len(images["legacy"]) == 2
    for legacy_image, image in zip(images["legacy"], images["current"]):
        assert legacy_image.name == image.name
        assert list(Image.open(legacy_image).getdata()) == list(Image.open(image).getdata())


def test_another_sampler_is_never_mixed_in(banked, tmp_path, capsys):
    bank = tmp_path / "bank"
    shutil.copytree(banked.bank, bank)
    shutil.copytree(banked.run, tmp_path / "t2")
    (tmp_path / "t2" / "bank.json").write_text(json.dumps({"path": str(bank)}))
    other = run_digits(tmp_path / "t3", bank, "model.num_steps=3")
    assert (other["bank_reused"], other["bank_computed"]) == (0, 10)  # same prompts and seeds, other key
    guided = run_digits(tmp_path / "g1", bank, "model.guidance_scale=1")
    assert guided["bank_reused"] == 0
    capsys.readouterr()
    assert bank_main(["select", str(bank), "--by", "stability", "--images", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds candidates of 3 model/sampler settings" in err and "--scope" in err
    # each run folder answers for its own scope
    for name in ("t2", "t3"):
        assert bank_main(["select", str(tmp_path / name), "--by", "stability", "--images", "none"]) == 0
        pd.testing.assert_frame_equal(kept(tmp_path / name).xs("stable", level="variant"),
                                      kept(tmp_path / name / "bank_select").xs("stable", level="variant"))


def test_scored_candidates_answer_every_rule_and_reuse_their_images(tmp_path, capsys):
    bank = tmp_path / "bank"
    plain = run_digits(tmp_path / "plain", bank, SCORERS, prompts=1, seeds=4)
    scored = run_digits(tmp_path / "scored", bank, SCORERS, "method.score_candidates=true", prompts=1, seeds=4)
    assert plain["bank_computed"] == 4 and (scored["bank_reused"], scored["bank_computed"]) == (0, 4)  # no scores yet
    contents = CandidateBank(bank).read()
    frame = contents.frame.sort_values("seed")
    assert len(frame) == 4 and contents.merged_duplicates == 4
    assert frame[["score.digit_classifier", "score.digit_realism"]].notna().all().all()
    assert all((bank / path).is_file() for path in frame["image"])
    again = run_digits(tmp_path / "again", bank, SCORERS, "method.score_candidates=true", prompts=1, seeds=4)
    assert (again["bank_reused"], again["bank_computed"]) == (4, 0)

    out = tmp_path / "rules"
    assert bank_main(["select", str(tmp_path / "scored"), "--by", "stability", "--by", "random", "--by",
                      "digit_realism", "--by", "oracle:digit_classifier", "--out", str(out)]) == 0
    assert "(images: bank)" in capsys.readouterr().out
    results = pd.read_csv(out / "results.csv").set_index("variant")
    best = frame.loc[frame["score.digit_realism"].idxmax()]
    assert results.loc["best_digit_realism", "seed"] == best["seed"]
    assert results.loc["best_digit_realism", "digit_realism"] == pytest.approx(best["score.digit_realism"])
    assert results.loc["oracle_digit_classifier", "seed"] == frame.loc[frame["score.digit_classifier"].idxmax(), "seed"]
    assert results.loc["stable", "seed"] == frame.loc[frame["stability_cosine"].idxmax(), "seed"]
    # costs of each rule from scratch: K round trips; one denoising pass; K denoising passes (+ decode and score)
    assert results.loc["stable", "unet_calls"] == 4 * 6 and results.loc["random", "unet_calls"] == 4
    assert results.loc["best_digit_realism", "unet_calls"] == 4 * 4
    chosen = Image.open(out / results.loc["best_digit_realism", "image"])
    stored = Image.open(bank / best["image"])
    assert list(chosen.convert("RGB").getdata()) == list(stored.convert("RGB").getdata())
    # the same rule with images regenerated from the chosen seed by the recorded model: the same digit image
    assert bank_main(["select", str(tmp_path / "scored"), "--by", "digit_realism", "--images", "regenerate",
                      "--out", str(tmp_path / "regenerated")]) == 0
    regenerated = Image.open(tmp_path / "regenerated" / "images" / "0_best_digit_realism.png").convert("L")
    difference = max(abs(a - b) for a, b in zip(regenerated.getdata(), stored.convert("L").getdata()))
    assert difference <= 2
    query = json.loads((out / "bank_query.json").read_text())
    assert query["rules"] == ["stable", "random", "best_digit_realism", "oracle_digit_classifier"]
    # the folder declares its variants and comparisons (method.json) and its report shows exactly those
    declaration = read_declaration(out)
    assert declaration.names == ("stable", "random", "best_digit_realism", "oracle_digit_classifier")
    assert declaration.spec("best_digit_realism").label == "Best of K by digit_realism"
    pairs = [("stable", "random"), ("best_digit_realism", "random"), ("oracle_digit_classifier", "random"),
             ("best_digit_realism", "stable"), ("oracle_digit_classifier", "stable")]
    assert [c.pair for c in declaration.comparisons] == pairs
    rates = pd.read_csv(out / "report" / "winning_rates.csv")
    assert set(zip(rates["a"], rates["b"])) >= set(pairs)
    assert ("best_digit_realism", "stable") in run_pairs(declaration)  # the human-eval page's pairs
    (out / "method.json").write_text(replace(declaration, comparisons=declaration.comparisons[:1]).to_json())
    write_report([out], tmp_path / "narrowed")
    narrowed = pd.read_csv(tmp_path / "narrowed" / "winning_rates.csv")
    assert ("best_digit_realism", "stable") not in set(zip(narrowed["a"], narrowed["b"]))
    assert ("stable", "random") in set(zip(narrowed["a"], narrowed["b"]))
    # a query folder written before method.json: the same comparisons, from its variant names
    (out / "method.json").unlink()
    write_report([out], tmp_path / "old")
    old = pd.read_csv(tmp_path / "old" / "winning_rates.csv")
    pd.testing.assert_frame_equal(old, rates)


def test_network_passes_are_measured_per_candidate(banked):
    from hydra.utils import instantiate

    model = instantiate(compose_cfg(["model=small_digits", "model.num_steps=2"]).model)
    frame = CandidateBank(banked.bank).read().frame
    assert (frame["nfe"] == model.unet_calls_per_roundtrip).all() and model.unet_calls_per_roundtrip == 6
    assert (frame["nfe_denoise"] == 2 * 2).all()  # T steps x (conditional + unconditional pass)
    assert (frame["seconds"] > frame["seconds_denoise"]).all() and (frame["seconds_denoise"] > 0).all()
    results = pd.read_csv(banked.run / "results.csv")
    assert (results["peak_memory_mb"] > 10).all()


def test_bad_bank_inputs_are_one_line(tmp_path, capsys):
    with pytest.raises(NoiseExpError, match="method.score_candidates=true needs bank.path"):
        run_digits(tmp_path / "a", None, SCORERS, "method.score_candidates=true")
    with pytest.raises(NoiseExpError, match="needs evaluators"):
        run_digits(tmp_path / "b", tmp_path / "bank", "method.score_candidates=true")
    with pytest.raises(NoiseExpError, match="bank.path is for the methods that draw candidates"):
        run_digits(tmp_path / "c", tmp_path / "bank", "method.steps=1", method="optimize")
    run_digits(tmp_path / "d", None)
    capsys.readouterr()
    for argv, message in [(["select", str(tmp_path / "d"), "--by", "stability"], "was not run with bank.path"),
                          (["select", str(tmp_path / "nowhere"), "--by", "stability"], "does not exist"),
                          (["correlate", str(tmp_path / "d"), "--scores", "x", "--bank", str(tmp_path / "none")],
                           "is not a candidate bank")]:
        assert bank_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_a_changed_evaluator_rescores_instead_of_reusing_its_old_scores(tmp_path, monkeypatch, capsys):
    from noise_exp.evaluators.digits import DigitClassifier

    bank, scored = tmp_path / "bank", [SCORERS, "method.score_candidates=true"]
    assert run_digits(tmp_path / "a", bank, *scored, prompts=2, seeds=4)["bank_computed"] == 8  # version A
    monkeypatch.setattr(DigitClassifier, "revision", DigitClassifier.revision + 1)  # its rules changed: version B
    b = run_digits(tmp_path / "b", bank, *scored, prompts=1, seeds=4)
    assert (b["bank_reused"], b["bank_computed"]) == (0, 4)
    again = run_digits(tmp_path / "again", bank, *scored, prompts=1, seeds=4)
    assert (again["bank_reused"], again["bank_computed"]) == (4, 0)
    # an option of the evaluator is part of its identity too: C=1 scores otherwise, and the bank serves those scores
    c = run_digits(tmp_path / "c", bank, *scored, "evaluator.digit_classifier.C=1", prompts=1, seeds=4)
    assert (c["bank_reused"], c["bank_computed"]) == (0, 4)
    frame = CandidateBank(bank).read().frame.set_index(["prompt", "seed"]).sort_index()
    first, second = (pd.read_csv(tmp_path / run / "results.csv").set_index("variant") for run in ("a", "c"))
    prompt = second.loc["stable", "prompt"]
    for variant in ("stable", "unstable"):
        assert frame.loc[(prompt, second.loc[variant, "seed"]), "score.digit_classifier"] == \
            pytest.approx(second.loc[variant, "digit_classifier"], abs=1e-6)
    old = first[first["prompt_id"] == 0].loc["stable"]
    assert abs(old["digit_classifier"] - frame.loc[(prompt, old["seed"]), "score.digit_classifier"]) > 1e-3
    assert frame.loc[prompt, "scorer.digit_classifier"].nunique() == 1
    # the whole bank mixes two versions (the second prompt was scored by A only): a query refuses in one line
    capsys.readouterr()
    assert bank_main(["select", str(bank), "--by", "digit_classifier", "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "digit_classifier scores come from 2 versions" in err, err
    assert bank_main(["select", str(tmp_path / "c"), "--by", "digit_classifier", "--out", str(tmp_path / "r")]) == 0
