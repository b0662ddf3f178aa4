"""Algorithm 1 on the tiny SDXL model."""
import torch

from noise_exp.methods import NoiseSelection
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.selection import select_noise
from noise_exp.similarity import stability


def test_kept_seeds_are_argmax_and_argmin_and_scores_do_not_depend_on_batch_size(tiny_sdxl):
    cond = tiny_sdxl.encode_prompt("a red colored car")
    roundtrip = ModelRoundTrip(tiny_sdxl, cond)
    seeds = list(range(10, 22))
    one = select_noise(seeds, tiny_sdxl.draw_noise, roundtrip, batch_size=1)
    eight = select_noise(seeds, tiny_sdxl.draw_noise, roundtrip, batch_size=8)
    assert one.seeds == seeds and len(one.scores) == len(seeds)
    assert torch.allclose(one.scores, eight.scores, atol=1e-5)
    assert one.stable.seed == seeds[int(one.scores.argmax())] == eight.stable.seed
    assert one.unstable.seed == seeds[int(one.scores.argmin())] == eight.unstable.seed
    assert one.stable.stability == float(one.scores.max()) and one.unstable.stability == float(one.scores.min())
    assert float(one.scores.max()) > float(one.scores.min())
    # the kept noise is the seed's noise and its score reproduces
    assert torch.equal(one.stable.noise, tiny_sdxl.draw_noise([one.stable.seed])[0])
    _, inverted = roundtrip(one.stable.noise[None], [one.stable.seed])
    assert float(stability(one.stable.noise[None], inverted)[0]) == one.stable.stability


def test_selection_method_outputs_variants_and_all_scores(tiny_sdxl):
    method = NoiseSelection(num_seeds=6, seed_start=3, batch_size=4)
    output = method.run(tiny_sdxl, tiny_sdxl.encode_prompt("a dog"), prompt_index=0)
    assert [v.name for v in output.variants] == ["stable", "unstable"]
    assert [s for s, _ in output.selection_scores] == list(range(3, 9))
    scores = dict(output.selection_scores)
    assert output.variants[0].stability == max(scores.values())
    assert scores[output.variants[1].seed] == min(scores.values())
    assert output.variants[0].unet_calls == 6 * tiny_sdxl.unet_calls_per_roundtrip


def test_candidate_seeds_are_the_papers_0_to_K_or_a_block_per_prompt():
    assert list(NoiseSelection(num_seeds=4).candidate_seeds(7)) == [0, 1, 2, 3]
    assert list(NoiseSelection(num_seeds=4, seed_start=10, seeds_per_prompt=True).candidate_seeds(2)) == [18, 19, 20, 21]


def test_non_finite_latents_name_the_prompt_and_the_seed():
    import pytest
    from hydra.utils import instantiate

    from noise_exp.errors import NoiseExpError
    from tests.conftest import compose_cfg

    model = instantiate(compose_cfg(["model=tiny_sd"]).model)
    with torch.no_grad():
        model.unet.conv_out.bias[0] = float("nan")  # what an fp16 overflow looks like downstream
    method = NoiseSelection(num_seeds=3, seed_start=40, batch_size=3)
    with pytest.raises(NoiseExpError, match=r"non-finite .*denoised latents for prompt 'a broken run', seed\(s\) \[40, 41, 42\]"):
        method.run(model, model.encode_prompt("a broken run"), prompt_index=0)
