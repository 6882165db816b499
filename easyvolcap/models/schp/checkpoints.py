"""The official SCHP checkpoints, declared as data (Google Drive only: no direct download link, no digest)."""

from __future__ import annotations

from .._checkpoint import Checkpoint
from .labels import MEAN_BGR, STD_BGR, label_set

__all__ = ["CHECKPOINTS", "CLASSES_KEY"]

_README = "https://github.com/GoGoDuck912/Self-Correction-Human-Parsing#trained-models"
_MHP = "the SCHP multi-person demo, mhp_extension/demo.ipynb (Google Drive id 1dwDrXHkhAe_nYtnSqi548zrjo5mlSPF0)"
_FILES = {"cihp": ("exp_schp_multi_cihp_local.pth", _MHP), "lip": ("exp-schp-201908261155-lip.pth", _README),
          "atr": ("exp-schp-201908301523-atr.pth", _README),
          "pascal": ("exp-schp-201908270938-pascal-person-part.pth", _README)}

CHECKPOINTS = {  # dataset -> checkpoint; files are {'state_dict': {'module.<key>': tensor}}; BGR input
    dataset: Checkpoint(dataset, file_name, None, source=source, license="MIT", classes=label_set(dataset).labels,
                        input_size=label_set(dataset).input_size, mean=MEAN_BGR, std=STD_BGR)
    for dataset, (file_name, source) in _FILES.items()
}
CLASSES_KEY = "decoder.conv4.weight"  # its first dimension is the number of classes the weights fix
