"""Device and dtype choice (noise_exp/devices.py): a bad value is one line, not a torch traceback."""
import pytest
import torch

from noise_exp.devices import resolve_device, resolve_dtype
from noise_exp.errors import NoiseExpError


def test_auto_and_cpu_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.float32  # half precision on CPU falls back


@pytest.mark.parametrize("device", ["bogus", "gpu", "cuda:x"])
def test_an_unknown_device_is_one_line(device):
    with pytest.raises(NoiseExpError, match=f"unknown device '{device}'; choose auto, cpu, cuda"):
        resolve_device(device)


def test_an_unknown_dtype_is_one_line():
    with pytest.raises(NoiseExpError, match="unknown dtype 'float8'"):
        resolve_dtype("float8", torch.device("cpu"))
