"""RVM port vs. the upstream goldens: strict loading of the official key layout, then every recorded case.

Weights are the deterministic synthetic ones of ``tests/parity/rvm_*.keys.json`` (official key order
and shapes); the goldens were computed by the upstream code on those weights and are kept slim (see
``tests/parity/README.md``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from goldens import Golden

from easyvolcap.errors import EvcError
from easyvolcap.models import MattingNetwork
from easyvolcap.models.rvm import VARIANTS, drop_refiner_keys
from easyvolcap.synthetic.weights import load_spec, synth_state_dict
from easyvolcap.weights import load_strict

PARITY = Path(__file__).parent / "parity"
ATOL = 1e-5
ATOL_FAST_GUIDED_FILTER = 1e-4  # divides by var + 1e-5, which amplifies rounding in flat regions
STATE_NAMES = ("r1", "r2", "r3", "r4")


class Fixture:
    """One variant: its spec, synthesized weights, loaded model and golden arrays."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.spec = load_spec(PARITY / f"rvm_{variant}.keys.json")
        self.state_dict = synth_state_dict(self.spec)
        self.model = MattingNetwork(variant).eval()
        self.load_result = self.model.load_state_dict(self.state_dict, strict=True)
        self.golden = Golden(PARITY / f"rvm_{variant}.golden.npz")
        self.src = self.golden.tensor("src")  # [2, 4, 3, 96, 128]

    def check(
        self, prefix: str, names: tuple[str, ...], outputs: list[torch.Tensor], atol: float = ATOL
    ) -> None:
        """Compare ``outputs`` with the golden arrays ``{prefix}_{name}``."""
        for name, actual in zip(names, outputs, strict=True):
            self.golden.check(f"{prefix}_{name}", actual, atol)


@pytest.fixture(scope="module", params=VARIANTS)
def rvm(request: pytest.FixtureRequest) -> Fixture:
    return Fixture(request.param)


def test_official_layout_loads_strictly(rvm: Fixture) -> None:
    ours = rvm.model.state_dict()
    assert list(ours) == [row[0] for row in rvm.spec["tensors"]], "key order differs from the official file"
    for key, shape, dtype, *_ in rvm.spec["tensors"]:
        assert list(ours[key].shape) == shape, key
        assert str(ours[key].dtype) == f"torch.{dtype}", key


def test_load_strict_refuses_the_other_variant_naming_its_keys(rvm: Fixture) -> None:
    other = next(v for v in VARIANTS if v != rvm.variant)
    with pytest.raises(EvcError, match=r"f: not a checkpoint of this model: \d+ missing keys \(first 'backbone\."):
        load_strict(MattingNetwork(other), rvm.state_dict, "f")


@torch.no_grad()
def test_time_series(rvm: Fixture) -> None:
    outputs = rvm.model(rvm.src, downsample_ratio=0.5)
    rvm.check("ts_dr050", ("fgr", "pha", *STATE_NAMES), outputs)


@torch.no_grad()
def test_frame_by_frame_feeds_states_back(rvm: Fixture) -> None:
    rec: list[torch.Tensor | None] = [None] * 4
    alphas = []
    for t in range(rvm.src.shape[1]):
        _fgr, pha, *rec = rvm.model(rvm.src[:, t], *rec, 0.5)  # 4-D frames, positional ratio
        alphas.append(pha)
    rvm.check("fbf_dr050", ("pha", *STATE_NAMES), [torch.stack(alphas, dim=1), *rec])


@torch.no_grad()
def test_segmentation_pass(rvm: Fixture) -> None:
    seg, *rec = rvm.model(rvm.src, downsample_ratio=0.5, segmentation_pass=True)
    rvm.check("seg_dr050", ("seg",), [seg])
    rvm.check("ts_dr050", STATE_NAMES, rec)  # the states do not depend on the head


@torch.no_grad()
def test_full_resolution_skips_refiner(rvm: Fixture) -> None:
    outputs = rvm.model(rvm.src[:1, :2], downsample_ratio=1.0)
    rvm.check("sub_dr100", ("fgr", "pha", *STATE_NAMES), outputs)


@torch.no_grad()
def test_non_integer_downsample_size(rvm: Fixture) -> None:
    fgr, pha, *_ = rvm.model(rvm.src[:1, :2], downsample_ratio=0.4)  # runs at 38 x 51
    rvm.check("sub_dr040", ("fgr", "pha"), [fgr, pha])


@torch.no_grad()
def test_fast_guided_filter(rvm: Fixture) -> None:
    model = MattingNetwork(rvm.variant, refiner="fast_guided_filter").eval()
    with pytest.raises(RuntimeError, match=r"refiner\.box_filter\.weight"):
        model.load_state_dict(rvm.state_dict, strict=True)
    model.load_state_dict(drop_refiner_keys(rvm.state_dict), strict=True)
    fgr, pha, *_ = model(rvm.src[:1, :2], downsample_ratio=0.5)
    rvm.check("sub_fgf_dr050", ("fgr", "pha"), [fgr, pha], atol=ATOL_FAST_GUIDED_FILTER)


@torch.no_grad()
def test_single_frame_equals_clip_of_one(rvm: Fixture) -> None:
    frame = rvm.src[:, 0]  # [2, 3, 96, 128]
    single = rvm.model(frame, downsample_ratio=0.5)
    clip = rvm.model(frame.unsqueeze(1), downsample_ratio=0.5)
    assert [x.shape for x in single[:2]] == [(2, 3, 96, 128), (2, 1, 96, 128)]
    for a, b in zip(single, [clip[0].squeeze(1), clip[1].squeeze(1), *clip[2:]], strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="resnet101"):
        MattingNetwork("resnet101")
    with pytest.raises(ValueError, match="bilateral"):
        MattingNetwork(refiner="bilateral")
    with pytest.raises(ValueError, match=r"\[3, 96, 128\]"):
        MattingNetwork()(torch.zeros(3, 96, 128))
