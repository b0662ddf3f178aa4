"""nx.optimize, nx.best_of_n (a verifier callable), nx.reward_opt (a pixel reward callable), select with a proxy
short list and with a candidate bank, on the tiny SD pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import noise_exp as nx
from tests.api.conftest import FAMILIES, PROMPT, load_pipe

SETTINGS = FAMILIES["sd"][3]


def brightness(images, prompts):
    """A verifier: the mean pixel value of each PIL image."""
    assert len(images) == len(prompts) and set(prompts) == {PROMPT}
    return [float(np.asarray(image, dtype=np.float64).mean()) for image in images]


def test_optimize_starts_from_the_seed_and_returns_what_nx_stability_measures(pipes):
    pipe = pipes("sd")
    steps = []
    better = nx.optimize(pipe, PROMPT, seed=1, steps=3, progress=False, callback=lambda i, s: steps.append(i), **SETTINGS)
    assert better.seed == 1 and steps == [0, 1, 2] and list(better.trace.step) == [0, 1, 2, 3]
    drawn = nx.select(pipe, PROMPT, num_seeds=1, seed_start=1, progress=False, **SETTINGS)
    assert better.original_stability == pytest.approx(drawn.stability, abs=1e-6)
    both = nx.stability(pipe, PROMPT, torch.cat([drawn.latents, better.latents]), **SETTINGS)  # a batch: a list
    assert both == pytest.approx([drawn.stability, better.stability], abs=1e-5)
    assert better.latents.shape == drawn.latents.shape and better.norm_ratio != 1.0
    assert better.nfe == 4 * SETTINGS["num_inference_steps"] * 3  # 3 steps + the last iterate, 3 passes per step
    again = nx.optimize(pipe, PROMPT, latents=drawn.latents, steps=3, progress=False, **SETTINGS)
    assert again.seed is None and torch.equal(again.latents, better.latents)
    lr = 100 * (4 * 16 * 16) / (4 * 128 * 128) * 100 / 3  # the paper's step, for these latents over 3 steps
    assert better.trace.lr[0] == pytest.approx(lr) and better.trace.lr[2] < lr  # cosine


def test_best_of_n_keeps_the_verifiers_favourite(pipes):
    heard = {}
    best = nx.best_of_n(pipes("sd"), PROMPT, num_seeds=3, verifier=brightness, batch_size=2, progress=False,
                        callback=heard.__setitem__, **SETTINGS)
    scores = dict(zip(best.candidates.seed, best.candidates.score))
    assert scores == pytest.approx(heard) and len(scores) == 3
    assert best.seed == max(scores, key=scores.get) and best.score == pytest.approx(max(scores.values()))
    assert best.nfe == 3 * SETTINGS["num_inference_steps"] * 2
    assert torch.equal(best.latents, nx.select(pipes("sd"), PROMPT, num_seeds=1, seed_start=best.seed,
                                               progress=False, **SETTINGS).latents)


def test_reward_opt_climbs_a_pixel_reward(pipes):
    result = nx.reward_opt(pipes("sd"), PROMPT, seed=0, steps=2, lr=50.0,
                           verifier=lambda pixels, prompts: pixels.mean(dim=(1, 2, 3)), progress=False, **SETTINGS)
    assert len(result.trace) == 3 and result.reward >= result.original_reward
    assert result.reward == pytest.approx(result.trace.reward.max())
    assert result.latents.shape == (1, 4, 16, 16) and result.nfe == (4 * 2 + 1) * 4 * 2


def test_reward_opt_keeps_the_best_iterate_unless_told_not_to(pipes):
    """A reward that only the first evaluation (the starting noise) scores high: keep_best returns the start."""
    def first_call_wins(pixels, prompts):
        calls.append(1)
        return pixels.mean(dim=(1, 2, 3)) * 1e-3 + (1.0 if len(calls) == 1 else 0.0)

    settings = {**SETTINGS, "num_inference_steps": 1}
    results = []
    for keep_best in (True, False):
        calls = []
        results.append(nx.reward_opt(pipes("sd"), PROMPT, seed=0, steps=2, lr=50.0, keep_best=keep_best,
                                     verifier=first_call_wins, progress=False, **settings))
    best, last = results
    assert best.reward == best.original_reward == best.trace.reward.max() and best.norm_ratio == 1.0
    assert last.reward == last.trace.reward.iloc[-1] < last.original_reward and not torch.equal(last.latents, best.latents)


def test_select_with_a_proxy_checks_only_its_short_list(pipes):
    choice = nx.select(pipes("sd"), PROMPT, num_seeds=6, proxy="partial:1", shortlist=2, unstable_shortlist=1,
                       progress=False, **SETTINGS)
    checked = choice.candidates.dropna(subset=["stability"])
    assert len(checked) == 3 and choice.candidates.proxy.notna().all()
    assert choice.seed in set(checked.seed) and choice.stability == checked.stability.max()
    exact = 4 * 2 + 4  # CFG denoise + unguided inversion over T = 4 steps
    assert choice.nfe == 6 * (1 * 2 + 1) + 3 * exact < 6 * exact


def test_progress_is_a_bar_on_stderr_unless_turned_off(pipes, capsys):
    settings = {**SETTINGS, "num_inference_steps": 1}
    for call in (lambda progress: nx.select(pipes("sd"), PROMPT, num_seeds=2, progress=progress, **settings),
                 lambda progress: nx.optimize(pipes("sd"), PROMPT, seed=0, steps=1, progress=progress, **settings)):
        call(False)
        assert capsys.readouterr() == ("", "")
        call(True)
        out, err = capsys.readouterr()
        assert out == "" and ("nx.select: 100%" in err and "2/2" in err or "nx.optimize: 100%" in err), err


def test_a_bank_folder_is_filled_then_reused(pipes, tmp_path):
    def interrupt_at_seed_1(seed, stability):
        if seed == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after two candidates: they are kept in the bank
        nx.select(pipes("sd"), PROMPT, num_seeds=3, batch_size=1, bank=tmp_path / "bank", progress=False,
                  callback=interrupt_at_seed_1, **SETTINGS)
    first = nx.select(pipes("sd"), PROMPT, num_seeds=3, bank=tmp_path / "bank", progress=False, **SETTINGS)
    again = nx.select(pipes("sd"), PROMPT, num_seeds=3, bank=tmp_path / "bank", progress=False, **SETTINGS)
    assert (first.reused, again.reused) == (2, 3)
    assert (again.seed, again.stability) == (first.seed, first.stability) and torch.equal(again.latents, first.latents)
    assert again.nfe == 2 * 4 * 2  # only the kept stable and unstable seeds are denoised again
    assert list(again.candidates.stability) == pytest.approx(list(first.candidates.stability), abs=1e-7)
    assert first.candidates.stability.notna().all()
    other_guidance = nx.select(pipes("sd"), PROMPT, num_seeds=1, bank=tmp_path / "bank", progress=False,
                               **{**SETTINGS, "guidance_scale": 4.0})
    tuned = load_pipe("sd")
    with torch.no_grad():
        tuned.unet.conv_out.bias.add_(1e-3)  # a fine-tune: other weights, same names and shapes
    fine_tune = nx.select(tuned, PROMPT, num_seeds=1, bank=tmp_path / "bank", progress=False, **SETTINGS)
    assert (other_guidance.reused, fine_tune.reused) == (0, 0)
    assert fine_tune.stability != first.candidates.stability[0]
