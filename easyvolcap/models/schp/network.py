"""Self-Correction Human Parsing (Li et al. 2020): the ``AugmentCE2P`` ResNet-101 with official key names.

The module tree mirrors the official network, so the released checkpoints load with ``strict=True``
once the ``module.`` prefix of their keys is stripped (note the official spelling ``fushion``). The
pipeline reads as ``stem -> layer1..4 -> context_encoding (PSP) -> decoder + edge -> fushion``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .abn import ActivatedBatchNorm2d

__all__ = ["Bottleneck", "DecoderModule", "EdgeModule", "PSPModule", "SchpNetwork", "schp_resnet101"]

_LAYERS_RESNET101 = (3, 4, 23, 3)


def _conv_abn(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    """``conv (no bias) -> ABN(leaky_relu)``, keys ``.0.weight`` and ``.1.*``."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, ActivatedBatchNorm2d(out_channels))


def _upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 with the stride and dilation -> 1x1, x4 channels) with ABN norms."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = ActivatedBatchNorm2d(planes, activation="none")
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = ActivatedBatchNorm2d(planes, activation="none")
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = ActivatedBatchNorm2d(planes * self.expansion, activation="none")
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _make_layer(in_channels: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            ActivatedBatchNorm2d(out_channels, activation="none"),
        )
    layers = [Bottleneck(in_channels, planes, stride, dilation, downsample)]
    layers += [Bottleneck(out_channels, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class PSPModule(nn.Module):
    """Pyramid pooling: ``[N, C, h, w] -> [N, out_channels, h, w]``.

    Each bin ``b`` pools to ``b x b``, projects (1x1 + ABN), and is upsampled back (``align_corners=True``);
    ``cat[p1, p2, p3, p6, x]`` then goes through a 3x3 conv + ABN.
    """

    def __init__(self, in_channels: int = 2048, out_channels: int = 512, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                ActivatedBatchNorm2d(out_channels),
            )
            for b in bins
        )
        self.bottleneck = _conv_abn(in_channels + len(bins) * out_channels, out_channels, kernel_size=3)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        priors = [_upsample(stage(x), size) for stage in self.stages]
        return self.bottleneck(torch.cat([*priors, x], dim=1))


class EdgeModule(nn.Module):
    """Edge branch on ``layer1..3``: returns edge logits ``[N, 2, h1, w1]`` and features ``[N, 768, h1, w1]``.

    Each input gets 1x1 -> 256 + ABN; one shared 3x3 ``conv4`` predicts 2 edge logits per scale; the
    three predictions are upsampled to ``layer1``'s size, concatenated and fused by the 1x1 ``conv5``.
    """

    def __init__(
        self, in_channels: tuple[int, int, int] = (256, 512, 1024), mid_channels: int = 256, out_channels: int = 2
    ) -> None:
        super().__init__()
        self.conv1 = _conv_abn(in_channels[0], mid_channels)
        self.conv2 = _conv_abn(in_channels[1], mid_channels)
        self.conv3 = _conv_abn(in_channels[2], mid_channels)
        self.conv4 = nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=True)
        self.conv5 = nn.Conv2d(out_channels * 3, out_channels, 1, bias=True)

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor) -> tuple[Tensor, Tensor]:
        size = x1.shape[-2:]
        features = [self.conv1(x1), self.conv2(x2), self.conv3(x3)]
        edges = [self.conv4(f) for f in features]
        features = [features[0]] + [_upsample(f, size) for f in features[1:]]
        edges = [edges[0]] + [_upsample(e, size) for e in edges[1:]]
        edge = self.conv5(torch.cat(edges, dim=1))
        return edge, torch.cat(features, dim=1)


class DecoderModule(nn.Module):
    """Parsing decoder: context ``[N, 512, h, w]`` + ``layer1`` ``[N, 256, h1, w1]``.

    Returns the parsing logits ``[N, num_classes, h1, w1]`` and its features ``[N, 256, h1, w1]``.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = _conv_abn(512, 256)
        self.conv2 = _conv_abn(256, 48)
        self.conv3 = nn.Sequential(*_conv_abn(304, 256), *_conv_abn(256, 256))
        self.conv4 = nn.Conv2d(256, num_classes, 1, bias=True)

    def forward(self, context: Tensor, low_level: Tensor) -> tuple[Tensor, Tensor]:
        high = _upsample(self.conv1(context), low_level.shape[-2:])
        x = self.conv3(torch.cat([high, self.conv2(low_level)], dim=1))
        return self.conv4(x), x


class SchpNetwork(nn.Module):
    """SCHP human parser (``AugmentCE2P`` ResNet-101 with PSP context, edge branch and fusion head).

    Args:
        num_classes: output classes: 20 for LIP/CIHP, 18 for ATR, 7 for Pascal-Person-Part. The
            official checkpoints fix it (it is the first dimension of ``decoder.conv4`` and
            ``fushion.3``).

    Example:
        >>> model = schp_resnet101(num_classes=20).eval()
        >>> model.load_state_dict(state_dict)  # official keys without 'module.'
        >>> (parsing, fusion), (edge,) = model(x)  # x: [B, 3, 473, 473], see forward()
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive class count, got {num_classes}.")
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)  # deep stem
        self.bn1 = ActivatedBatchNorm2d(64, activation="none")
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = ActivatedBatchNorm2d(64, activation="none")
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = ActivatedBatchNorm2d(128, activation="none")
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers = _LAYERS_RESNET101
        self.layer1 = _make_layer(128, 64, layers[0])
        self.layer2 = _make_layer(256, 128, layers[1], stride=2)
        self.layer3 = _make_layer(512, 256, layers[2], stride=2)
        self.layer4 = _make_layer(1024, 512, layers[3], stride=1, dilation=2)  # output stride 16
        self.context_encoding = PSPModule(2048, 512)
        self.edge = EdgeModule()
        self.decoder = DecoderModule(num_classes)
        self.fushion = nn.Sequential(  # official spelling
            nn.Conv2d(1024, 256, 1, bias=False),
            ActivatedBatchNorm2d(256),
            nn.Dropout2d(0.1),
            nn.Conv2d(256, num_classes, 1, bias=True),
        )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """Parse a batch of person crops.

        Args:
            x: ``[B, 3, H, W]`` float32, **BGR** channel order: ``(uint8 / 255 - mean) / std`` with
                ``mean = (0.406, 0.456, 0.485)`` and ``std = (0.225, 0.224, 0.229)`` (ImageNet's RGB
                statistics in B, G, R order; see ``transforms.normalize``). ``H, W`` are the label set's
                input size: 473 for LIP/CIHP, 512 for ATR/Pascal.

        Returns:
            ``[[parsing, fusion], [edge]]``, as upstream: raw logits at 1/4 resolution
            ``h = ceil(ceil(H / 2) / 2)`` (119 for 473, 128 for 512). ``parsing`` and ``fusion`` are
            ``[B, num_classes, h, w]``, ``edge`` is ``[B, 2, h, w]``. Upstream's label maps come from
            ``fusion``.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be a [B, 3, H, W] BGR batch, got {list(x.shape)}.")
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(F.relu(self.bn3(self.conv3(x))))
        f1 = self.layer1(x)  # [B, 256, h, w], 1/4
        f2 = self.layer2(f1)  # [B, 512, .], 1/8
        f3 = self.layer3(f2)  # [B, 1024, .], 1/16
        f4 = self.layer4(f3)  # [B, 2048, .], 1/16 (dilated)
        context = self.context_encoding(f4)  # [B, 512, ., .]
        parsing, parsing_features = self.decoder(context, f1)
        edge, edge_features = self.edge(f1, f2, f3)
        fusion = self.fushion(torch.cat([parsing_features, edge_features], dim=1))
        return [[parsing, fusion], [edge]]


def schp_resnet101(*, num_classes: int) -> SchpNetwork:
    """SCHP ResNet-101 (the layout of every official SCHP checkpoint), randomly initialized.

    ``num_classes``: 20 (``exp-schp-201908261155-lip.pth`` and the CIHP models), 18 (ATR) or 7 (Pascal).
    """
    return SchpNetwork(num_classes)
