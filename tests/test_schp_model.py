"""SCHP port vs. the upstream goldens: strict loading of the official key layouts, logits, label maps.

Weights are the deterministic synthetic ones of ``tests/parity/schp_*.keys.json`` (official key order and
shapes, every key prefixed ``module.``); the goldens were computed by upstream ``simple_extractor`` on
those weights and are kept slim (see ``tests/parity/README.md``). ResNet-101 at 473x473 is heavy on a CPU, so the LIP
model runs exactly twice per session: once on the square image, once on the non-square path.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from goldens import Golden

from easyvolcap.errors import EvcError
from easyvolcap.models.schp import (
    LABEL_SETS,
    ActivatedBatchNorm2d,
    SchpNetwork,
    affine_transform,
    box_to_center_scale,
    get_palette,
    label_set,
    logits_to_image,
    normalize,
    schp_resnet101,
    upsample_logits,
    warp_to_input,
)
from easyvolcap.synthetic.weights import load_spec, synth_state_dict
from easyvolcap.weights import load_strict

PARITY = Path(__file__).parent / "parity"
ATOL = 1e-4  # logits: reruns on other CPUs / thread counts move them by ~3e-5
MARGIN = 1e-4  # label pixels whose top-1 minus top-2 logit is below this may flip
INPUT_SIZE = (473, 473)


def _strip_module(state_dict: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    assert all(key.startswith("module.") for key in state_dict)
    return OrderedDict((key.removeprefix("module."), value) for key, value in state_dict.items())


def _margin(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 over axis 0 of ``[C, H, W]``."""
    top2 = np.sort(logits, axis=0)[-2:]
    return top2[1] - top2[0]


def _assert_labels_equal(actual: np.ndarray, expected: np.ndarray, margin: np.ndarray, name: str) -> int:
    """Exact equality except where ``margin < MARGIN``; returns the number of excused flips."""
    differ = actual != expected
    unexplained = differ & (margin >= MARGIN)
    assert not unexplained.any(), f"{name}: {int(unexplained.sum())} labels differ at margin >= {MARGIN}"
    return int(differ.sum())


@pytest.fixture(scope="module")
def golden() -> Golden:
    return Golden(PARITY / "schp_lip.golden.npz")


@pytest.fixture(scope="module")
def lip() -> tuple[dict, SchpNetwork, object]:
    spec = load_spec(PARITY / "schp_lip.keys.json")
    model = schp_resnet101(num_classes=20).eval()
    result = model.load_state_dict(_strip_module(synth_state_dict(spec)), strict=True)
    return spec, model, result


@pytest.fixture(scope="module")
def square_outputs(lip, golden) -> dict[str, torch.Tensor]:
    _, model, _ = lip
    with torch.no_grad():
        (parsing, fusion), (edge,) = model(normalize(golden["image_bgr_u8"]))
    return {"parsing": parsing, "fusion": fusion, "edge": edge}


@pytest.fixture(scope="module")
def non_square(lip, golden) -> dict[str, np.ndarray]:
    """The whole ``simple_extractor`` path on the 150x200 image, through our transforms."""
    _, model, _ = lip
    image = golden["ns_image_bgr_u8"]
    height, width = image.shape[:2]
    center, scale = box_to_center_scale((0, 0, width - 1, height - 1), INPUT_SIZE)
    trans = affine_transform(center, scale, INPUT_SIZE)
    inv_trans = affine_transform(center, scale, INPUT_SIZE, inverse=True)
    warped = warp_to_input(image, trans, INPUT_SIZE)
    with torch.no_grad():
        fusion = model(normalize(warped))[0][-1]
    logits = logits_to_image(upsample_logits(fusion, INPUT_SIZE)[0], inv_trans, (width, height))
    return {"center": center, "scale": scale, "trans": trans, "inv_trans": inv_trans, "warped": warped,
            "logits": logits}


def _check_layout(spec: dict, model: SchpNetwork) -> None:
    ours = model.state_dict()
    official = [row[0].removeprefix("module.") for row in spec["tensors"]]
    assert list(ours) == official, "key order differs from the official file"
    for key, shape, dtype, *_ in spec["tensors"]:
        tensor = ours[key.removeprefix("module.")]
        assert list(tensor.shape) == shape, key
        assert str(tensor.dtype) == f"torch.{dtype}", key


def test_lip_layout_loads_strictly(lip) -> None:
    spec, model, _ = lip
    _check_layout(spec, model)
    assert not any(key.endswith("num_batches_tracked") for key in model.state_dict())


@pytest.mark.parametrize(("name", "num_classes"), [("atr", 18), ("pascal", 7)])
def test_other_layouts_load_strictly(name: str, num_classes: int) -> None:
    spec = load_spec(PARITY / f"schp_{name}.keys.json")
    model = schp_resnet101(num_classes=num_classes)
    model.load_state_dict(_strip_module(synth_state_dict(spec)), strict=True)
    _check_layout(spec, model)
    assert LABEL_SETS[name].num_classes == num_classes


def test_load_strict_refuses_another_class_count_naming_the_shape(lip) -> None:
    _, model, _ = lip
    with pytest.raises(EvcError, match=r"decoder\.conv4\.weight has shape \(20, 256, 1, 1\), the model expects \(18,"):
        load_strict(schp_resnet101(num_classes=18), model.state_dict(), "f")


@pytest.mark.parametrize("name", ["parsing", "fusion", "edge"])
def test_logits_match_golden(square_outputs, golden, name: str) -> None:
    golden.check(name, square_outputs[name], ATOL)


def test_label_473(square_outputs, golden) -> None:
    logits = upsample_logits(square_outputs["fusion"], INPUT_SIZE)[0].numpy()  # [20, 473, 473]
    labels = logits.argmax(axis=0)
    _assert_labels_equal(labels, golden["label_473"], _margin(logits), "label_473")


def test_non_square_affine(non_square, golden) -> None:
    assert non_square["center"].dtype == np.float32 and non_square["scale"].dtype == np.float32
    np.testing.assert_array_equal(non_square["center"], golden["ns_center"])
    np.testing.assert_array_equal(non_square["scale"], golden["ns_scale"])
    assert list(golden["ns_width_height"]) == [150, 200]
    for ours, name in [(non_square["trans"], "ns_trans"), (non_square["inv_trans"], "ns_inv_trans")]:
        assert ours.dtype == np.float64 and ours.shape == (2, 3)
        np.testing.assert_allclose(ours, golden[name], atol=1e-9, rtol=0)


def test_non_square_warp(non_square, golden) -> None:
    golden.check("ns_warped_bgr_u8", non_square["warped"], atol=1, max_differing=64)


def test_non_square_label(non_square, golden) -> None:
    logits = non_square["logits"]
    assert logits.shape == (20, 200, 150) and logits.dtype == np.float32
    margin = golden["ns_label_margin"].astype(np.float32)
    _assert_labels_equal(logits.argmax(axis=0), golden["ns_label"], margin, "ns_label")


def test_palette(golden) -> None:
    np.testing.assert_array_equal(get_palette(20), golden["palette"])
    assert get_palette(256).shape == (256, 3)
    assert len({tuple(c) for c in get_palette(256)}) == 256


def test_label_sets() -> None:
    assert {name: (s.input_size, s.num_classes) for name, s in LABEL_SETS.items()} == {
        "cihp": ((473, 473), 20), "lip": ((473, 473), 20), "atr": ((512, 512), 18), "pascal": ((512, 512), 7)
    }
    assert label_set("lip").labels[10] == "Jumpsuits" and label_set("cihp").labels[10] == "Torso-skin"
    assert label_set("cihp").labels[14:18] == ("Left-arm", "Right-arm", "Left-leg", "Right-leg")
    with pytest.raises(ValueError, match=r"'mhp'.*cihp"):
        label_set("mhp")


def test_activated_batch_norm_formula() -> None:
    torch.manual_seed(0)
    bn = ActivatedBatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.0, 0.5]))
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 4, 3, 5)
    view = (1, -1, 1, 1)
    expected = (x - bn.running_mean.view(view)) / torch.sqrt(bn.running_var.view(view) + 1e-5)
    expected = expected * (bn.weight.abs() + 1e-5).view(view) + bn.bias.view(view)
    torch.testing.assert_close(bn.train()(x), torch.nn.functional.leaky_relu(expected, 0.01))  # running stats always
    bn.activation = "none"
    torch.testing.assert_close(bn(x), expected)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    with pytest.raises(ValueError, match="relu6"):
        ActivatedBatchNorm2d(4, activation="relu6")


def test_rejects_bad_inputs(lip) -> None:
    _, model, _ = lip
    with pytest.raises(ValueError, match=r"\[1, 4, 8, 8\]"):
        model(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="positive"):
        SchpNetwork(0)
    with pytest.raises(ValueError, match="uint8"):
        normalize(np.zeros((8, 8, 3), dtype=np.float32))
    assert normalize(np.zeros((2, 8, 6, 3), dtype=np.uint8)).shape == (2, 3, 8, 6)


@pytest.mark.parametrize("channels", [1, 2, 7])
def test_channel_warps_are_upstreams_per_channel_warps(channels: int) -> None:
    """One map per class, contiguous, with upstream's values (its ``transform_logits`` loop)."""
    import cv2

    from easyvolcap.models.schp import warp_logit_channels

    rng = np.random.default_rng(channels)
    logits = (rng.standard_normal((channels, 61, 47)) * 3).astype(np.float32)
    center, scale = box_to_center_scale((0, 0, 149, 199), (61, 47))
    inv_trans = affine_transform(center, scale, (61, 47), inverse=True)
    upstream = [cv2.warpAffine(c, inv_trans, (150, 200), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0) for c in logits]
    ours = list(warp_logit_channels(logits, inv_trans, (150, 200)))
    assert len(ours) == channels and all(o.flags.c_contiguous and o.shape == (200, 150) for o in ours)
    for index, (a, b) in enumerate(zip(ours, upstream, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"channel {index}")
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        next(warp_logit_channels(logits[0], inv_trans, (150, 200)))


def test_warping_rgb_then_reversing_channels_gives_the_bgr_warp() -> None:
    """The runner warps a crop view of the RGB frame and reverses the channels of the small result:
    bitwise upstream's warp of the BGR crop."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    crop = frame[7:83, 11:120]  # a view: rows are strided
    center, scale = box_to_center_scale((0, 0, crop.shape[1] - 1, crop.shape[0] - 1), (61, 47))
    trans = affine_transform(center, scale, (61, 47))
    upstream = warp_to_input(np.ascontiguousarray(crop[..., ::-1]), trans, (61, 47))
    np.testing.assert_array_equal(warp_to_input(crop, trans, (61, 47))[..., ::-1], upstream)
