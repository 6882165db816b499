import pickle
import urllib.error

import pytest
import torch
from torch import nn

from easyvolcap.errors import EvcError
from easyvolcap.models._checkpoint import Checkpoint
from easyvolcap.weights import clean_state_dict, load_checkpoint, load_strict, resolve_checkpoint


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_clean_unwraps_and_strips_module_prefix():
    sd = small_model().state_dict()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    assert list(clean_state_dict(wrapped)) == list(sd)
    assert list(clean_state_dict(sd)) == list(sd)
    mixed = {"module.a": torch.zeros(1), "b": torch.zeros(1)}  # prefix not on every key: kept
    assert list(clean_state_dict(mixed)) == ["module.a", "b"]


def test_load_checkpoint_round_trip_and_strict_load(tmp_path):
    model = small_model()
    torch.save({"state_dict": {f"module.{k}": v + 1 for k, v in model.state_dict().items()}}, tmp_path / "c.pth")
    other = small_model()
    load_strict(other, load_checkpoint(tmp_path / "c.pth"), "c.pth")
    assert torch.equal(other[0].weight, model[0].weight + 1)


def test_pickle_that_is_not_weights_is_refused_without_running_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump(Evil(), handle)
    with pytest.raises(EvcError, match="not a readable weights file"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"\x80garbage" * 10, b"PK\x03\x04broken zip"])
def test_corrupt_files_are_refused(tmp_path, content):
    (tmp_path / "c.pth").write_bytes(content)
    with pytest.raises(EvcError, match=r"c\.pth: not a readable weights file"):
        load_checkpoint(tmp_path / "c.pth")


def test_truncated_checkpoint_is_refused(tmp_path):
    torch.save(small_model().state_dict(), tmp_path / "c.pth")
    data = (tmp_path / "c.pth").read_bytes()
    (tmp_path / "c.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(EvcError, match="not a readable weights file"):
        load_checkpoint(tmp_path / "c.pth")


def test_non_tensor_content_is_refused(tmp_path):
    torch.save({"epoch": 1}, tmp_path / "c.pth")
    with pytest.raises(EvcError, match="holds no state dict"):
        load_checkpoint(tmp_path / "c.pth")


def test_mismatch_names_keys_variant_and_shapes():
    model = small_model()
    sd = model.state_dict()
    with pytest.raises(EvcError, match=r"1 missing keys \(first '1.bias'\), 1 unexpected keys \(first 'x'\)"):
        load_strict(model, {**{k: v for k, v in sd.items() if k != "1.bias"}, "x": torch.zeros(1)}, "f")
    other = {"a.weight": torch.zeros(1)}
    with pytest.raises(EvcError, match="for variant 'tiny'"):
        load_strict(model, other, "f", {"tiny": set(other)})
    with pytest.raises(EvcError, match=r"0.weight has shape \(1,\), the model expects \(4, 3, 3, 3\)"):
        load_strict(model, {**sd, "0.weight": torch.zeros(1)}, "f")


def test_resolve_prefers_given_path_and_reports_missing(tmp_path):
    spec = Checkpoint("v", "weights.pth", "https://example.invalid/weights.pth")
    (tmp_path / "mine.pth").write_bytes(b"x")
    assert resolve_checkpoint(spec, tmp_path / "mine.pth") == tmp_path / "mine.pth"
    with pytest.raises(EvcError, match="no such file"):
        resolve_checkpoint(spec, tmp_path / "absent.pth")


def test_download_failure_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    spec = Checkpoint("v", "weights.pth", "https://example.invalid/weights.pth")
    with pytest.raises(EvcError) as info:
        resolve_checkpoint(spec)
    message = str(info.value)
    assert "https://example.invalid/weights.pth" in message
    assert str(tmp_path / "hub" / "checkpoints" / "weights.pth") in message


def test_cached_file_is_used_and_download_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    spec = Checkpoint("v", "weights.pth", "https://example.invalid/w.pth", sha256="0" * 64)

    def fake_download(url, dst, **kwargs):
        with open(dst, "wb") as handle:
            handle.write(b"tampered")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(EvcError, match="does not match its sha256"):
        resolve_checkpoint(spec)
    assert not spec.cache_path().exists()
    spec.cache_path().write_bytes(b"cached")
    assert resolve_checkpoint(spec) == spec.cache_path()
