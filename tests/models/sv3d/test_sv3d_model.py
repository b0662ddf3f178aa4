"""The tiny SV3D adapter: conditioning, reproducible noise, a round trip the methods can select on and optimize."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from noise_exp.data.orbits import OrbitSet
from noise_exp.errors import NoiseExpError
from noise_exp.imaging import prepare_view, split_strip
from noise_exp.methods.optimization import OptimizationConfig, optimize_noise
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.methods.selection import select_noise
from noise_exp.models.sv3d import load_sv3d_components

SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def cond(tiny_sv3d, orbit_dir):
    prompt = OrbitSet(path=str(orbit_dir), num_views=tiny_sv3d.num_frames).load()[0]
    return tiny_sv3d.condition(prompt)


def test_conditioning_is_the_input_view(tiny_sv3d, cond, orbit_dir):
    assert cond.tensors["image_embeds"].shape == (1, 1, tiny_sv3d.unet.config.cross_attention_dim)
    assert cond.tensors["image_latents"].shape == (1, 4, 8, 8)
    assert cond.tensors["added_time_ids"].tolist() == [[pytest.approx(1e-5)]]
    again = tiny_sv3d.encode_prompt(str(sorted((orbit_dir / "object_00").iterdir())[0]))
    other = tiny_sv3d.encode_prompt(str(sorted((orbit_dir / "object_01").iterdir())[0]))
    assert torch.equal(again.tensors["image_latents"], tiny_sv3d.condition(
        OrbitSet(path=str(orbit_dir), num_views=4).load()[0]).tensors["image_latents"])
    assert not torch.allclose(other.tensors["image_embeds"], again.tensors["image_embeds"])


def test_noise_is_reproducible_per_seed(tiny_sv3d):
    noise = tiny_sv3d.draw_noise([3, 5])
    assert noise.shape == (2, 4, 4, 8, 8) and noise.dtype == torch.float32
    assert torch.equal(tiny_sv3d.draw_noise([5])[0], noise[1])
    assert torch.equal(noise[0], torch.randn((1, 4, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(3))[0])


def test_roundtrip_stability_is_finite_varies_by_seed_and_selection_picks_the_best(tiny_sv3d, cond):
    result = select_noise(SEEDS, tiny_sv3d.draw_noise, ModelRoundTrip(tiny_sv3d, cond), batch_size=2)
    scores = result.scores
    assert torch.isfinite(scores).all() and bool(((scores > -1) & (scores <= 1)).all())
    assert float(scores.max() - scores.min()) > 1e-3  # seeds differ: there is something to select
    assert result.stable.stability == pytest.approx(float(scores.max()))
    assert result.stable.seed == SEEDS[int(scores.argmax())] and result.unstable.seed == SEEDS[int(scores.argmin())]
    batch_one = select_noise(SEEDS[:2], tiny_sv3d.draw_noise, ModelRoundTrip(tiny_sv3d, cond), batch_size=1)
    assert torch.allclose(batch_one.scores, scores[:2], atol=1e-5)


def test_optimization_raises_stability(tiny_sv3d, cond):
    config = OptimizationConfig(steps=3, lr=1500.0, momentum=0.5)
    result = optimize_noise(tiny_sv3d.draw_noise([0]), [0], ModelRoundTrip(tiny_sv3d, cond), config)
    before, after = float(result.original_stability[0]), float(result.optimized_stability[0])
    assert np.isfinite(after) and after > before + 0.01
    assert result.optimized_latents.shape == (1, 4, 4, 8, 8)


def test_decode_gives_one_strip_per_sample_and_its_frames(tiny_sv3d):
    latents = torch.randn(2, 4, 4, 8, 8)
    strips = tiny_sv3d.decode(latents)
    frames = tiny_sv3d.decode_frames(latents[:1])[0]
    assert len(strips) == 2 and strips[0].size == (4 * 64, 64)
    assert [np.asarray(f).tolist() for f in split_strip(strips[0], 4)] == [np.asarray(f).tolist() for f in frames]


def test_unet_calls_count_cfg_in_both_directions(tiny_sv3d):
    assert tiny_sv3d.unet_calls_per_roundtrip == 4 * (2 + 2)


def test_prepare_view_whitens_alpha_and_pads_to_square():
    rgba = np.zeros((40, 20, 4), dtype=np.uint8)
    rgba[10:30, 5:15] = (200, 0, 0, 255)  # a red box on a transparent (black) background
    view = np.asarray(prepare_view(Image.fromarray(rgba, "RGBA"), 32))
    assert view.shape == (32, 32, 3)
    assert view[0, 0].tolist() == [255, 255, 255] and view[16, 16].tolist() == [200, 0, 0]
    framed = np.asarray(prepare_view(Image.fromarray(rgba, "RGBA"), 32, frame_ratio=1.0))
    assert view[1, 16].tolist() == [255, 255, 255]
    assert framed[1, 16].tolist() != [255, 255, 255]  # cropped to the box: the object now spans the full height


def test_missing_converted_folder_names_the_converter(tmp_path):
    with pytest.raises(NoiseExpError, match="scripts/convert_sv3d.py"):
        load_sv3d_components(tmp_path / "sv3d_u", torch.float32)
