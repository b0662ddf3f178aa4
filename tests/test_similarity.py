import math

import pytest
import torch

from noise_exp.errors import NoiseExpError
from noise_exp.similarity import get_similarity, negative_rmse, pearson, stability


def test_stability_is_cosine_of_flattened_latents_per_sample():
    a = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])  # [2, 1, 2]
    b = torch.tensor([[[0.0, 1.0]], [[2.0, 2.0]]])
    assert stability(a, b).tolist() == pytest.approx([0.0, 1.0])
    c = torch.tensor([[[1.0, 2.0]]])
    d = torch.tensor([[[2.0, 1.0]]])
    assert float(stability(c, d)[0]) == pytest.approx(4 / 5)


def test_stability_accumulates_in_fp32_for_half_inputs():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 64, 64)
    y = x + 0.1 * torch.randn_like(x)
    half = stability(x.half(), y.half())
    assert half.dtype == torch.float32
    assert torch.allclose(half, stability(x, y), atol=1e-3)
    assert math.isfinite(float(stability(x.half() * 300, y.half() * 300)[0]))  # no fp16 overflow of the norms


def test_other_similarities_and_their_names():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert float(negative_rmse(x, x)[0]) == 0.0
    assert float(negative_rmse(x, x + 1)[0]) == pytest.approx(-1.0)
    assert float(pearson(x, 2 * x + 5)[0]) == pytest.approx(1.0)
    assert get_similarity("cosine") is stability
    with pytest.raises(NoiseExpError, match="unknown similarity"):
        get_similarity("dot")
    for given in (3, ["cosine"]):  # from the command line: method.similarity=3, method.similarity=[cosine]
        with pytest.raises(NoiseExpError, match="unknown similarity"):
            get_similarity(given)
