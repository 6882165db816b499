"""Network definitions (torch and torchvision only; no file IO, no weights download), one sub-package per
family: ``rvm``, ``bgmv2``, ``schp``. Each family's ``checkpoints`` module declares its facts as data and
imports no torch; importing this package imports no family.
"""

from importlib import import_module

_FAMILY = {"MattingBase": "bgmv2", "MattingRefine": "bgmv2", "MattingNetwork": "rvm", "rvm_mobilenetv3": "rvm",
           "rvm_resnet50": "rvm", "SchpNetwork": "schp", "schp_resnet101": "schp"}
__all__ = sorted(_FAMILY)


def __getattr__(name: str):
    if name in _FAMILY:
        return getattr(import_module(f".{_FAMILY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
