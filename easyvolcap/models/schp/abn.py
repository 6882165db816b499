"""Activated batch normalization (inference semantics of SCHP's ``InPlaceABNSync``), in plain PyTorch.

SCHP normalizes with the compiled ``InPlaceABNSync`` extension. At inference it computes, per channel,

    y = (x - running_mean) * (rsqrt(running_var + eps) * (|weight| + eps)) + bias

followed by an activation (``leaky_relu`` with slope 0.01, or none). Note the absolute value and the
``+ eps`` on the weight: a plain ``nn.BatchNorm2d`` would need ``weight.abs() + eps`` as its weight.
The operations below run in that order, so the result is bitwise equal to the extension's CPU kernel
(``F.batch_norm`` with the adjusted weight differs by about 2.5e-5 on SCHP's logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ActivatedBatchNorm2d"]

ACTIVATIONS = ("leaky_relu", "none")


class ActivatedBatchNorm2d(nn.Module):
    """Batch norm with running statistics, ``|weight| + eps`` scaling and a fused activation.

    Holds exactly ``weight, bias, running_mean, running_var`` (no ``num_batches_tracked``), like the
    official checkpoints. Always normalizes with the running statistics, in ``train()`` mode too:
    this module is for inference only.

    Args:
        num_features: channel count ``C`` of the ``[N, C, ...]`` input.
        activation: ``"leaky_relu"`` (SCHP's default) or ``"none"`` (the backbone, which applies
            its own ReLU).
        slope: negative slope of the leaky ReLU.
        eps: added to the variance and to ``|weight|``.
    """

    def __init__(
        self, num_features: int, activation: str = "leaky_relu", slope: float = 0.01, eps: float = 1e-5
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}.")
        self.num_features = num_features
        self.activation = activation
        self.slope = slope
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[N, C, ...]`` float; returns the same shape."""
        shape = (1, -1) + (1,) * (x.ndim - 2)  # broadcast per channel
        scale = torch.rsqrt(self.running_var + self.eps) * (self.weight.abs() + self.eps)
        y = (x - self.running_mean.view(shape)) * scale.view(shape) + self.bias.view(shape)
        if self.activation == "leaky_relu":
            y = F.leaky_relu(y, self.slope, inplace=True)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, activation={self.activation!r}, slope={self.slope}, eps={self.eps}"
