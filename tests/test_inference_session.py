"""The CPU inference session (channels-last weights, malloc keeping freed blocks) and empty-mask detection."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from easyvolcap import inference
from easyvolcap.inference import empty_masks, inference_session, keep_freed_memory, to_device_batch


def conv_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)).eval()


def test_session_lays_weights_out_channels_last_and_restores_them():
    model = conv_model()
    cpu = torch.device("cpu")
    with inference_session(model, cpu) as layout:
        assert layout == torch.channels_last
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
        with inference_session(model, cpu) as inner:  # nested: changes nothing, restores nothing
            assert inner == torch.channels_last
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous() for p in model.parameters())


def test_session_gives_the_same_results_up_to_rounding():
    model = conv_model()
    images = [np.random.default_rng(i).integers(0, 256, (20, 24, 3), dtype=np.uint8) for i in range(3)]
    images.append((np.arange(20 * 24 * 3) % 256).astype(np.uint8).reshape(20, 24, 3))  # every value
    cpu = torch.device("cpu")
    with torch.inference_mode():
        plain = model(to_device_batch(images, cpu, torch.float32))
        with inference_session(model, cpu) as layout:
            batch = to_device_batch(images, cpu, torch.float32, layout)
            assert batch.is_contiguous(memory_format=torch.channels_last)
            assert torch.equal(batch, to_device_batch(images, cpu, torch.float32))
            stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
            assert torch.equal(batch, stacked.float() / 255)  # the table converts exactly as x / 255
            assert torch.equal(to_device_batch(images, cpu, torch.float64), stacked.double() / 255)
            tuned = model(batch)
    torch.testing.assert_close(tuned, plain, rtol=1e-5, atol=1e-6)


def test_freed_memory_is_kept_only_inside_the_outermost_block(monkeypatch):
    calls = []

    class FakeGlibc:
        def mallopt(self, parameter, value):
            calls.append((parameter, value))

    monkeypatch.setattr(inference, "_glibc", lambda: FakeGlibc())
    with keep_freed_memory():
        with keep_freed_memory():
            keep = inference._KEEP
            assert calls == [(inference._M_MMAP_THRESHOLD, keep), (inference._M_TRIM_THRESHOLD, keep)]
        assert len(calls) == 2  # the inner block's end leaves the thresholds alone
    assert calls[2:] == list(inference._SETTLED.items())  # set back when the outermost block ends
    monkeypatch.undo()
    with keep_freed_memory():  # the real C library (glibc here, or nothing elsewhere)
        pass
    big = torch.ones(2**24)  # 64 MB: allocation still works after the thresholds are set back
    assert big.sum() == 2**24


def test_empty_masks_agree_with_the_float_test_on_the_boundary():
    above = torch.nextafter(torch.tensor(0.5), torch.tensor(1.0))
    pha = torch.zeros(6, 4, 5)
    pha[1, 0, 0] = 0.5  # exactly 0.5 rounds to 128 but is not above 0.5: empty
    pha[2, 1, 1] = above  # rounds to 128 and is above 0.5: not empty
    pha[3, 2, 2] = 0.49  # 125
    pha[4, 3, 3] = 0.51  # 130
    pha[5] = 1.0
    alpha = pha.mul(255).round_().to(torch.uint8)
    want = ~(pha > 0.5).flatten(1).any(-1)
    assert empty_masks(alpha, pha).tolist() == want.tolist() == [True, True, False, True, False, False]


def test_alpha_to_uint8_rounds_like_torch():
    from easyvolcap.inference import alpha_to_uint8

    pha = torch.rand(3, 17, 23)
    pha[0, 0, :6] = torch.tensor([0.0, 1.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255])  # ties: half to even
    want = pha.mul(255).round().to(torch.uint8)
    assert torch.equal(alpha_to_uint8(pha), want)
    assert torch.equal(alpha_to_uint8(pha.permute(0, 2, 1)), want.permute(0, 2, 1))  # any strides
    assert torch.equal(alpha_to_uint8(pha.double()), want)  # other dtypes: torch's path


def test_cpu_batches_of_other_kinds_take_the_plain_path_with_the_same_values():
    """Batches the table conversion does not take (RGBA, 16-bit, float16) still come out as ``x / 255``."""
    cpu = torch.device("cpu")
    rng = np.random.default_rng(0)
    rgba = [rng.integers(0, 256, (4, 5, 4), dtype=np.uint8) for _ in range(2)]
    out = to_device_batch(rgba, cpu, torch.float32)
    assert out.shape == (2, 4, 4, 5)
    assert torch.equal(out, torch.from_numpy(np.stack(rgba)).permute(0, 3, 1, 2).float() / 255)
    rgb = [rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)]
    half = to_device_batch(rgb, cpu, torch.float16)
    assert half.dtype == torch.float16
    assert torch.equal(half, to_device_batch(rgb, cpu, torch.float32).half())
