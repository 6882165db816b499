"""BGMv2 port vs. the upstream goldens: strict loading of the official key layouts, then every recorded case.

Weights are the deterministic synthetic ones of ``tests/parity/bgmv2_*.keys.json`` (official key order
and shapes); the goldens were computed by the upstream code on those weights and are kept slim (see
``tests/parity/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from goldens import Golden

from easyvolcap.errors import EvcError
from easyvolcap.models.bgmv2 import BACKBONES, REFINE_MODES, MattingBase, MattingRefine, base_state_dict
from easyvolcap.synthetic.weights import load_spec, synth_state_dict
from easyvolcap.weights import load_strict

PARITY = Path(__file__).parent / "parity"
ATOL = 1e-5
REFINE_OUTPUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
SAMPLE_PIXELS = 2000  # k = 2000 // 16 = 125 blocks per image
# A different layout to load each checkpoint into; resnet50 <-> resnet101 share every name but layer3's.
OTHER_BACKBONE = {"mobilenetv2": "resnet50", "resnet50": "resnet101", "resnet101": "resnet50"}


class Fixture:
    """One backbone: its spec, synthesized weights, both loaded models and the golden arrays."""

    def __init__(self, backbone: str) -> None:
        self.backbone = backbone
        self.spec = load_spec(PARITY / f"bgmv2_{backbone}.keys.json")
        self.state_dict = synth_state_dict(self.spec)
        self.refine = MattingRefine(
            backbone,
            backbone_scale=0.25,
            refine_sample_pixels=SAMPLE_PIXELS,
            refine_threshold=0.1,
            refine_kernel_size=3,
        ).eval()
        self.refine_load = self.refine.load_state_dict(self.state_dict, strict=True)
        self.base = MattingBase(backbone).eval()
        self.base_load = self.base.load_state_dict(base_state_dict(self.state_dict), strict=True)
        self.golden = Golden(PARITY / f"bgmv2_{backbone}.golden.npz")
        self.src, self.bgr = self.golden.tensor("src"), self.golden.tensor("bgr")  # [2, 3, 128, 160]

    def check(self, key: str, actual: torch.Tensor, atol: float = ATOL) -> None:
        self.golden.check(key, actual, atol)


@pytest.fixture(scope="module", params=BACKBONES)
def bgm(request: pytest.FixtureRequest) -> Fixture:
    return Fixture(request.param)


@contextmanager
def refiner_settings(model: MattingRefine, **settings: object) -> Iterator[MattingRefine]:
    """Set ``model.refiner`` attributes for the duration of a block, then restore them."""
    saved = {name: getattr(model.refiner, name) for name in settings}
    for name, value in settings.items():
        setattr(model.refiner, name, value)
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(model.refiner, name, value)


def test_official_layout_loads_strictly(bgm: Fixture) -> None:
    ours = bgm.refine.state_dict()
    assert list(ours) == [row[0] for row in bgm.spec["tensors"]], "key order differs from the official file"
    for key, shape, dtype, *_ in bgm.spec["tensors"]:
        assert list(ours[key].shape) == shape, key
        assert str(ours[key].dtype) == f"torch.{dtype}", key
    base_keys = [row[0] for row in bgm.spec["tensors"] if not row[0].startswith("refiner.")]
    assert list(bgm.base.state_dict()) == base_keys
    assert len(bgm.spec["tensors"]) - len(base_keys) == 20  # refiner conv1..4, bn1..3


def test_load_strict_refuses_another_backbone_naming_its_keys(bgm: Fixture) -> None:
    other = MattingBase(OTHER_BACKBONE[bgm.backbone])
    with pytest.raises(EvcError, match=r"f: not a checkpoint of this model: .*keys \(first 'backbone\."):
        load_strict(other, base_state_dict(bgm.state_dict), "f")


@torch.no_grad()
def test_base(bgm: Fixture) -> None:
    pha, fgr, err, hid = bgm.base(bgm.src, bgm.bgr)
    bgm.check("base_pha", pha)
    bgm.check("base_fgr", fgr)
    bgm.check("base_err", err)
    bgm.check("base_hid_chmean", hid.double().mean(dim=(2, 3)))
    bgm.check("base_hid_crop", hid[:, :, :32, :40])


@pytest.mark.parametrize("mode", REFINE_MODES)
@torch.no_grad()
def test_refine(bgm: Fixture, mode: str) -> None:
    with refiner_settings(bgm.refine, mode=mode) as model:
        outputs = model(bgm.src, bgm.bgr)
    for name, actual in zip(REFINE_OUTPUTS, outputs, strict=True):
        key = f"{mode}_{name}"
        bgm.check(key, actual, atol=0 if name == "ref_sm" else ATOL)  # the refined blocks exactly
    if mode == "sampling":  # the k largest errors, all positive in these goldens
        assert outputs[-1].sum(dim=(1, 2, 3)).tolist() == [SAMPLE_PIXELS // 16] * 2


@torch.no_grad()
def test_nothing_selected_upsamples_the_coarse_matte(bgm: Fixture) -> None:
    with refiner_settings(bgm.refine, mode="thresholding", threshold=1.0) as model:  # err <= 1, never > 1
        pha, _fgr, pha_sm, *_, ref_sm = model(bgm.src, bgm.bgr)
    assert not ref_sm.any()
    expected = F.interpolate(pha_sm, size=pha.shape[2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(pha, expected.clamp(0, 1), atol=0, rtol=0)


@torch.no_grad()
def test_refining_every_block_equals_full_mode(bgm: Fixture) -> None:
    """The patch path (crop, convolve, paste) is the full-image path cut into 4x4 blocks."""
    with refiner_settings(bgm.refine, mode="full") as model:
        full = model(bgm.src, bgm.bgr)
    # k is capped at the H/4 * W/4 blocks; keep blocks of zero error too.
    with refiner_settings(bgm.refine, mode="sampling", sample_pixels=10**9, prevent_oversampling=False) as model:
        every = model(bgm.src, bgm.bgr)
    for name, a, b in zip(REFINE_OUTPUTS, every, full, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_size_not_multiple_of_4_names_padded_size(bgm: Fixture) -> None:
    src, bgr = bgm.src[:, :, :126, :157], bgm.bgr[:, :, :126, :157]
    with pytest.raises(ValueError, match="divisible by 4, got 126x157; pad the images to 128x160"):
        bgm.refine(src, bgr)


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="'resnet34'"):
        MattingBase("resnet34")
    with pytest.raises(ValueError, match=r"0\.75"):
        MattingRefine("mobilenetv2", backbone_scale=0.75)
    with pytest.raises(ValueError, match="'patch'"):
        MattingRefine("mobilenetv2", refine_mode="patch")
    with pytest.raises(ValueError, match="kernel_size 5"):
        MattingRefine("mobilenetv2", refine_kernel_size=5)


@pytest.mark.parametrize("mode", REFINE_MODES)
@torch.no_grad()
def test_kernel_size_1_shapes(mode: str) -> None:
    model = MattingRefine("mobilenetv2", refine_mode=mode, refine_kernel_size=1, refine_sample_pixels=320).eval()
    assert model.refiner.conv1.weight.shape == (24, 42, 1, 1)
    src, bgr = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    shapes = [tuple(x.shape) for x in model(src, bgr)]
    assert shapes == [(2, 1, 64, 96), (2, 3, 64, 96), (2, 1, 16, 24), (2, 3, 16, 24), (2, 1, 16, 24), (2, 1, 16, 24)]


def test_settings_are_checked_when_changed_after_construction() -> None:
    model = MattingRefine("mobilenetv2").eval()
    src = torch.rand(1, 3, 64, 64)
    model.refiner.mode = "patch"
    with pytest.raises(ValueError, match="'patch'"):
        model(src, src)
    model.refiner.mode = "full"
    model.backbone_scale = 1.0
    with pytest.raises(ValueError, match="backbone_scale"):
        model(src, src)
    with pytest.raises(ValueError, match="shape of src"):
        model(src, src[:, :, :32])
