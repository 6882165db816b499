"""Self-Correction Human Parsing (SCHP): the ResNet-101 parser with official key names, its transforms and labels.

Its facts (checkpoints, label sets, pass cost) are in :mod:`.checkpoints` and :mod:`.labels`, which import no
torch; the other modules are imported on first use of their names here.
"""

from importlib import import_module

_MODULE = {
    "LABEL_SETS": "labels", "MEAN_BGR": "labels", "STD_BGR": "labels", "LabelSet": "labels", "get_palette": "labels",
    "label_set": "labels", "ActivatedBatchNorm2d": "abn", "SchpNetwork": "network", "schp_resnet101": "network",
    "affine_transform": "transforms", "box_to_center_scale": "transforms", "logits_to_image": "transforms",
    "normalize": "transforms", "upsample_logits": "transforms", "warp_logit_channels": "transforms",
    "warp_to_input": "transforms",
}
__all__ = sorted(_MODULE)


def __getattr__(name: str):
    if name in _MODULE:
        return getattr(import_module(f".{_MODULE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
