"""Our backbones against torchvision's: the same state-dict keys and shapes, and the same outputs with the same
weights (torchvision's are what the official RVM and BGMv2 checkpoints were saved from)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from easyvolcap.models.backbones import make_divisible
from easyvolcap.models.bgmv2.encoders import MobileNetV2Encoder, ResNetEncoder
from easyvolcap.models.rvm.encoders import MobileNetV3LargeEncoder, ResNet50Encoder
from easyvolcap.synthetic.weights import synth_tensor


def torchvision_rvm_mobilenetv3() -> nn.Module:
    from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3

    from easyvolcap.models.rvm.encoders import _MOBILENETV3_LARGE_DILATED

    config = partial(InvertedResidualConfig, width_mult=1.0)
    setting = [config(c.in_channels, c.kernel, c.expanded, c.out_channels, c.squeeze_excite,
                      "HS" if c.hard_swish else "RE", c.stride, c.dilation) for c in _MOBILENETV3_LARGE_DILATED]
    model = MobileNetV3(setting, last_channel=1280)
    del model.avgpool, model.classifier
    return model


def torchvision_resnet(blocks, in_channels: int = 3) -> nn.Module:
    from torchvision.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, list(blocks), replace_stride_with_dilation=[False, False, True])
    model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    del model.avgpool, model.fc
    return model


def torchvision_bgmv2_mobilenetv2() -> nn.Module:
    from torchvision.models.mobilenetv2 import MobileNetV2

    model = MobileNetV2()
    model.features[0][0] = nn.Conv2d(6, 32, 3, 2, 1, bias=False)
    del model.features[18], model.classifier
    model.features[14].conv[1][0].stride = (1, 1)
    for block in model.features[15:]:
        block.conv[1][0].dilation, block.conv[1][0].padding = (2, 2), (2, 2)
    return model


CASES = {  # name: (ours, torchvision's equivalent, input channels)
    "rvm_mobilenetv3": (MobileNetV3LargeEncoder, torchvision_rvm_mobilenetv3, 3),
    "rvm_resnet50": (ResNet50Encoder, lambda: torchvision_resnet((3, 4, 6, 3)), 3),
    "bgmv2_resnet101": (lambda: ResNetEncoder("resnet101"), lambda: torchvision_resnet((3, 4, 23, 3), 6), 6),
    "bgmv2_mobilenetv2": (MobileNetV2Encoder, torchvision_bgmv2_mobilenetv2, 6),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.slow
def test_backbone_equals_torchvisions(name):
    ours_factory, theirs_factory, channels = CASES[name]
    ours, theirs = ours_factory().eval(), theirs_factory().eval()
    shapes = {key: tuple(value.shape) for key, value in theirs.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in ours.state_dict().items()} == shapes
    weights = {key: synth_tensor(key, list(value.shape), str(value.dtype).removeprefix("torch."))
               for key, value in theirs.state_dict().items()}
    ours.load_state_dict(weights)
    theirs.load_state_dict(weights)
    for name_, value in ours.named_buffers():  # normalisation constants (not in the state dict)
        if name_ not in weights:
            theirs.register_buffer(name_, value, persistent=False)
    theirs._taps = getattr(ours, "_taps", None)
    x = torch.rand(2, channels, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = ours(x)
        want = type(ours).forward(theirs, x)  # our taps over torchvision's modules
    assert len(got) == len(want) >= 4
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_aspp_equals_torchvisions():
    from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

    from easyvolcap.models.bgmv2.decoder import ASPP

    ours, theirs = ASPP(320, [3, 6, 9]).eval(), TorchvisionASPP(320, [3, 6, 9]).eval()
    weights = {key: synth_tensor(key, list(value.shape), str(value.dtype).removeprefix("torch."))
               for key, value in theirs.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in weights.items()}
    ours.load_state_dict(weights)
    theirs.load_state_dict(weights)
    x = torch.rand(2, 320, 9, 13, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.slow
def test_the_models_import_no_torchvision():
    """torchvision's model zoo costs a second or more to import: the matting and parsing networks do without."""
    import subprocess
    import sys

    code = ("import sys, easyvolcap.pretrained, easyvolcap.models.rvm.model, easyvolcap.models.bgmv2.model, "
            "easyvolcap.models.schp.network, easyvolcap.runners.rvm, easyvolcap.runners.bgmv2, "
            "easyvolcap.runners.schp; print('torchvision' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_make_divisible_is_the_mobilenets_rule():
    assert [make_divisible(v) for v in (16, 60, 72 // 4, 120 // 4, 960 // 4, 3.2)] == [16, 64, 24, 32, 240, 8]
