"""Zero-NFE proxies of s(eps) (issue 24): noise statistics and a seed prior from a bank, in method=select_fast."""
import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from noise_exp.bank.__main__ import main as bank_main
from noise_exp.bank.queries import load_candidates
from noise_exp.config import compose_config
from noise_exp.errors import NoiseExpError
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.seed_proxies import NoiseProxy, low_frequency_energy, noise_norm, parse_any_proxy
from noise_exp.methods.select_fast import shortlist_indices
from tests.support.bank import run_digits

K = 6


def test_noise_statistics_and_syntax():
    noise = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(noise_norm(noise), noise.flatten(1).norm(dim=1))
    assert torch.allclose(low_frequency_energy(noise, 1), noise.flatten(1).pow(2).mean(dim=1))
    block_means = noise.unfold(2, 2, 2).unfold(3, 2, 2).mean(dim=(-1, -2))  # [3, 4, 4, 4]
    assert torch.allclose(low_frequency_energy(noise, 2), (4 * block_means.pow(2)).flatten(1).mean(dim=1))
    assert parse_any_proxy("norm") == NoiseProxy("norm") and str(parse_any_proxy("lowfreq:2")) == "lowfreq:2"
    assert str(parse_any_proxy("steps:3")) == "steps:3"
    for bad in ("norm:1", "lowfreq", "lowfreq:0", "prior:", "noise"):
        with pytest.raises(NoiseExpError, match="method.proxy must be"):
            parse_any_proxy(bad)


@pytest.fixture(scope="module")
def digits_prior(tmp_path_factory):
    """A bank of 2 digit prompts x K seeds (T = 2) and the prior written from it by the bank CLI."""
    root = tmp_path_factory.mktemp("prior")
    run_digits(root / "calibrate", root / "bank", prompts=2, seeds=K)
    assert bank_main(["prior", str(root / "bank"), "--out", str(root / "prior.json")]) == 0
    return root


def test_prior_is_the_mean_over_the_bank_prompts(digits_prior):
    prior = json.loads((digits_prior / "prior.json").read_text())
    frames = [p.frame for p in load_candidates(digits_prior / "bank").prompts]
    assert prior["seeds"] == list(range(K)) and len(frames) == 2
    hand = [(frames[0]["stability_cosine"][k] + frames[1]["stability_cosine"][k]) / 2 for k in range(K)]
    assert prior["prior"] == pytest.approx(hand, abs=1e-12)
    assert prior["nfe"] == 2 * K * 6  # T = 2 with CFG: 2 x 2 denoising + 2 inversion passes per candidate


def _fast(*overrides):
    return instantiate(compose_config(["method=select_fast", f"method.num_seeds={K}", "method.batch_size=4",
                                       *overrides]).method)


def test_prior_short_lists(digits_prior, digits):
    from tests.methods.conftest import with_settings

    model = with_settings(digits, num_steps=2)
    cond = model.encode_prompt("a handwritten digit 7")
    prior_file = digits_prior / "prior.json"
    select = instantiate(compose_config(["method=select", f"method.num_seeds={K}", "method.batch_size=4"]).method)
    expected = select.run(model, cond, 0)
    whole = _fast(f"method.proxy=prior:{prior_file}", f"method.shortlist={K}").run(model, cond, 0)
    assert whole.selection_scores == expected.selection_scores
    assert [(v.name, v.seed, v.stability) for v in whole.variants] == \
        [(v.name, v.seed, v.stability) for v in expected.variants]
    prior = torch.tensor(json.loads(prior_file.read_text())["prior"])
    with NetworkPasses(model.network) as passes:
        short = _fast(f"method.proxy=prior:{prior_file}", "method.shortlist=2").run(model, cond, 0)
    assert [seed for seed, _ in short.selection_scores] == shortlist_indices(prior, 2, 1)
    assert passes.count == 3 * 6 == short.variants[0].unet_calls  # no NFE for the prior, 3 exact round trips
    exact = dict(expected.selection_scores)
    assert short.variants[0].seed == max(shortlist_indices(prior, 2, 1), key=exact.get)


def test_prior_of_another_scope_and_a_missing_prior_are_one_line_errors(digits_prior, tmp_path):
    prior_file = digits_prior / "prior.json"
    overrides = ("method=select_fast", f"method.num_seeds={K}", "method.shortlist=2")
    with pytest.raises(NoiseExpError) as missing:
        run_digits(tmp_path / "missing", None, *overrides, f"method.proxy=prior:{tmp_path / 'none.json'}",
                   method="select_fast")
    assert "does not exist" in str(missing.value) and "\n" not in str(missing.value)
    with pytest.raises(NoiseExpError) as other:
        run_digits(tmp_path / "other", None, *overrides, f"method.proxy=prior:{prior_file}",
                   "model.guidance_scale=1", method="select_fast")
    assert "other model/sampler settings (guidance_scale: 3 vs 1)" in str(other.value)
    assert "\n" not in str(other.value)
    summary = run_digits(tmp_path / "same", None, *overrides, f"method.proxy=prior:{prior_file}", prompts=1,
                         method="select_fast")
    assert np.isfinite(summary["stability/stable"])


def test_a_run_records_its_prior_by_content_not_by_path(digits_prior, tmp_path):
    """A prior rewritten in place changes the run's settings (a resume is refused); a prior moved does not."""
    from noise_exp.rundir.fingerprint import run_fingerprint

    def recorded(path):
        cfg = compose_config(["model=small_digits", "method=select_fast", f"method.proxy=prior:{path}"])
        return run_fingerprint(cfg).settings["method.proxy"]

    original = recorded(digits_prior / "prior.json")
    (tmp_path / "moved").mkdir()
    moved = tmp_path / "moved" / "prior.json"
    moved.write_bytes((digits_prior / "prior.json").read_bytes())
    assert original.startswith("prior:prior.json@sha256:") and recorded(moved) == original
    data = json.loads(moved.read_text())
    data["prior"][0] += 0.01
    moved.write_text(json.dumps(data))
    assert recorded(moved) != original
