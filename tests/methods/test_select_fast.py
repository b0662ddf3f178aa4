"""method=select_fast: the proxies' identities, M = K is method=select, a short list is checked exactly, NFEs."""
import pytest
import torch
from hydra.utils import instantiate

from noise_exp.config import compose_config
from noise_exp.errors import NoiseExpError
from noise_exp.methods.compute import NetworkPasses
from noise_exp.methods.proxies import Proxy, ProxyScorer, downsample_noise, parse_proxy
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.select_fast import shortlist_indices
from noise_exp.similarity import stability

K = 12


def _method(*overrides):
    return instantiate(compose_config(["method=select_fast", f"method.num_seeds={K}", "method.batch_size=4",
                                       *overrides]).method)


def test_proxy_syntax():
    assert parse_proxy("partial:2") == Proxy("partial", 2) and str(parse_proxy(" steps:3")) == "steps:3"
    assert parse_proxy("exact") == Proxy("exact")
    for bad in ("partial", "partial:0", "steps:x", "res:2", "exact:1", "partial:-1"):
        with pytest.raises(NoiseExpError, match="method.proxy must be partial:<k>"):
            parse_proxy(bad)


def test_downsampled_noise_is_a_noise():
    noise = torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    small = downsample_noise(noise, 2)
    assert small.shape == (64, 4, 4, 4)
    assert torch.allclose(small[0, 0, 0, 0], 2 * noise[0, 0, :2, :2].mean())
    assert float(small.std()) == pytest.approx(1.0, abs=0.03)


def test_full_length_proxies_are_the_exact_score(digits):
    cond = digits.encode_prompt("a handwritten digit 4")
    noise = digits.draw_noise(range(4))
    exact = stability(noise, ModelRoundTrip(digits, cond)(noise, range(4))[1])
    for text in ("partial:10", "steps:10", "resolution:1", "exact"):
        scorer = ProxyScorer.build(parse_proxy(text), digits, cond)
        assert torch.allclose(scorer(noise, range(4)), exact, atol=1e-6), text
        assert scorer.unet_calls == digits.unet_calls_per_roundtrip
    assert ProxyScorer.build(parse_proxy("partial:2"), digits, cond).unet_calls == 2 * 3
    assert ProxyScorer.build(parse_proxy("steps:4"), digits, cond).unet_calls == 4 * 3
    partial = ProxyScorer.build(parse_proxy("partial:2"), digits, cond)(noise, range(4))
    assert not torch.allclose(partial, exact, atol=1e-3)
    with pytest.raises(NoiseExpError, match="cannot be made 4x smaller"):
        ProxyScorer.build(parse_proxy("resolution:4"), digits, cond)
    with pytest.raises(NoiseExpError, match="at most model.num_steps=10"):
        ProxyScorer.build(parse_proxy("partial:11"), digits, cond)


def test_shortlist_takes_the_best_and_the_worst():
    scores = torch.tensor([0.5, 0.9, 0.1, 0.9, 0.3, 0.7])
    assert shortlist_indices(scores, 2, 1) == [1, 2, 3]
    assert shortlist_indices(scores, 3, 0) == [1, 3, 5]


def _rows(output):
    return [(v.name, v.seed, v.stability, v.unet_calls) for v in output.variants]


def test_whole_short_list_is_method_select(digits):
    cond = digits.encode_prompt("a handwritten digit 2")
    select = instantiate(compose_config(["method=select", f"method.num_seeds={K}", "method.batch_size=4"]).method)
    expected = select.run(digits, cond, 0)
    with NetworkPasses(digits.network) as passes:
        fast = _method(f"method.shortlist={K - 1}").run(digits, cond, 0)
    assert fast.selection_scores == expected.selection_scores  # same seeds, same scores
    assert _rows(fast) == [(name, seed, score, K * 30) for name, seed, score, _ in _rows(expected)]
    assert passes.count == K * 30


def test_short_list_is_checked_exactly_and_nfes_add_up(digits):
    cond = digits.encode_prompt("a handwritten digit 8")
    seeds = list(range(K))
    noise = digits.draw_noise(seeds)
    proxy = ProxyScorer.build(parse_proxy("partial:3"), digits, cond)(noise, seeds)
    exact = stability(noise, ModelRoundTrip(digits, cond)(noise, seeds)[1])
    checked = shortlist_indices(proxy, 4, 2)
    with NetworkPasses(digits.network) as passes:
        fast = _method("method.proxy=partial:3", "method.shortlist=4", "method.unstable_shortlist=2").run(digits, cond, 0)
    assert [seed for seed, _ in fast.selection_scores] == checked
    assert [s for _, s in fast.selection_scores] == pytest.approx(exact[checked].tolist(), abs=1e-6)
    stable, unstable = fast.variants
    assert stable.seed == checked[int(exact[checked].argmax())]
    assert unstable.seed == checked[int(exact[checked].argmin())]
    assert stable.unet_calls == K * 3 * 3 + 6 * 30 == passes.count


def test_a_proxy_no_cheaper_than_exact_selection_is_refused_naming_both_costs(digits):
    cond = digits.encode_prompt("a handwritten digit 3")
    exact = K * digits.unet_calls_per_roundtrip  # 12 x 30
    with pytest.raises(NoiseExpError) as err:  # T' = 50 > T = 10: each proxy round trip costs 5x an exact one
        _method("method.proxy=steps:50", "method.shortlist=2").run(digits, cond, 0)
    assert str(err.value).startswith(f"method.proxy=steps:50 costs {K * 150 + 3 * 30} NFEs per prompt")
    assert f"not below exact selection's {exact}" in str(err.value)
    with pytest.raises(NoiseExpError, match="costs 414 NFEs"):  # partial:9 (27 NFEs) + 3 exact: 12 x 27 + 90 >= 360
        _method("method.proxy=partial:9", "method.shortlist=2").run(digits, cond, 0)
