"""Stand-ins with known answers for the models, shared by the tests."""

from __future__ import annotations

import torch
from torch import nn

from easyvolcap.detectors import Person


class ColourParser(nn.Module):
    """A stub parser with a known answer: label 1 where the crop is red, 2 where green, else background.

    It returns logits at the full input size, so the tool's upsampling is the identity and the only
    geometry left is the crop, the letterbox warp and the restore.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def forward(self, x):  # x: normalised BGR
        self.calls.append(len(x))
        bgr = x * torch.tensor([0.225, 0.224, 0.229]).view(1, 3, 1, 1) + torch.tensor([0.406, 0.456, 0.485]).view(
            1, 3, 1, 1)
        red = (bgr[:, 2] > 0.5) & (bgr[:, 1] < 0.3)
        green = (bgr[:, 1] > 0.5) & (bgr[:, 2] < 0.3)
        logits = torch.stack([torch.full_like(red, 0.5, dtype=torch.float32), red.float() * 4, green.float() * 4], 1)
        logits = torch.cat([logits, torch.full((len(x), 17, *x.shape[2:]), -5.0)], 1)
        return [[logits, logits], [logits[:, :2]]]


class RedChannelMatting(nn.Module):
    """A stand-in RVM: alpha is the red channel."""

    variant = "mobilenetv3"  # whose pass cost plans its batches

    def forward(self, src, r1=None, r2=None, r3=None, r4=None, downsample_ratio=1.0):
        state = torch.zeros(src.shape[0], 1, 1, 1)
        return [src, src[:, :, :1].clone(), state, state, state, state]


class BoxDetector:
    """A stub detector: fixed people per frame index."""

    def __init__(self, people: dict[int, list[Person]]) -> None:
        self.people, self.seen = people, 0

    def detect(self, images):
        out = [self.people.get(self.seen + i, []) for i in range(len(images))]
        self.seen += len(images)
        return out
