"""noise_exp.hashing: the same weights get the same name wherever they sit; other weights another one."""
import pytest

from noise_exp.errors import NoiseExpError
from noise_exp.hashing import file_identity, weights_identity

MIB = 1 << 20


def model_folder(root, unet: bytes):
    (root / "unet").mkdir(parents=True)
    (root / "unet" / "weights.bin").write_bytes(unet)
    (root / "model_index.json").write_text('{"_class_name": "X"}')
    return root


def test_a_folder_is_named_by_its_content_not_its_path(tmp_path):
    weights = bytes(range(256)) * 4
    first = weights_identity(str(model_folder(tmp_path / "a", weights)))
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    assert weights_identity(str(model_folder(tmp_path / "b", weights))) == first
    (tmp_path / "b" / ".lock").write_text("a hidden file is not weights")
    assert weights_identity(str(tmp_path / "b")) == first
    assert weights_identity(str(model_folder(tmp_path / "c", weights[:-1] + b"\x00"))) != first
    (tmp_path / "c" / "unet" / "weights.bin").rename(tmp_path / "c" / "unet" / "other.bin")  # a file's name counts
    assert weights_identity(str(tmp_path / "c")) != weights_identity(str(model_folder(tmp_path / "d", weights)))


def test_a_large_file_is_named_by_its_size_and_first_and_last_mib(tmp_path):
    path = tmp_path / "w.bin"
    data = bytearray(3 * MIB)
    path.write_bytes(data)
    named = file_identity(path)
    data[MIB + 5] = 1  # the middle MiB is not read: by design, the cost of naming multi-GB weights
    path.write_bytes(data)
    assert file_identity(path) == named
    for where in (0, 3 * MIB - 1):
        changed = bytearray(3 * MIB)
        changed[where] = 1
        path.write_bytes(changed)
        assert file_identity(path) != named, where
    path.write_bytes(bytes(3 * MIB + 1))
    assert file_identity(path) != named


def test_a_hub_id_outside_the_cache_is_unresolved_and_a_file_is_refused(tmp_path):
    assert weights_identity("nobody/not-a-model") == "hub:nobody/not-a-model@unresolved"
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(NoiseExpError, match="is a file; give a diffusers folder or a hub id"):
        weights_identity(str(tmp_path / "model.safetensors"))
