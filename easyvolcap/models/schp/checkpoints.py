"""The official SCHP checkpoints, declared as data (Google Drive only: no direct download link)."""

from __future__ import annotations

from .._checkpoint import Checkpoint

__all__ = ["CHECKPOINTS"]

_README = "https://github.com/GoGoDuck912/Self-Correction-Human-Parsing#trained-models"
_MHP = "the SCHP multi-person demo, mhp_extension/demo.ipynb (Google Drive id 1dwDrXHkhAe_nYtnSqi548zrjo5mlSPF0)"

CHECKPOINTS = {  # dataset -> checkpoint; files are {'state_dict': {'module.<key>': tensor}}
    "cihp": Checkpoint("cihp", "exp_schp_multi_cihp_local.pth", None, source=_MHP, license="MIT"),
    "lip": Checkpoint("lip", "exp-schp-201908261155-lip.pth", None, source=_README, license="MIT"),
    "atr": Checkpoint("atr", "exp-schp-201908301523-atr.pth", None, source=_README, license="MIT"),
    "pascal": Checkpoint("pascal", "exp-schp-201908270938-pascal-person-part.pth", None, source=_README,
                         license="MIT"),
}
