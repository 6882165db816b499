"""SCHP's facts, declared as data: the official checkpoints (Google Drive only: no direct download link, no
digest), their label sets and input sizes, and the memory cost of parsing one crop."""

from __future__ import annotations

from .._checkpoint import Checkpoint, PassCost
from .labels import MEAN_BGR, STD_BGR, label_set

__all__ = ["CHECKPOINTS", "CLASSES_KEY", "DATASETS", "crop_pass_cost"]

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
DATASETS = tuple(CHECKPOINTS)


def crop_pass_cost(input_size: tuple[int, int]) -> PassCost:
    """The memory of parsing one crop of the network's ``input_size`` (height, width), whatever the frame's size.

    Measured with ``bench/batch_sweep.py``: about 1,700 bytes per crop pixel. A crop already gives each
    convolution plenty of work: on the CPU 1 crop per pass runs as fast as 2 (0.77 vs 0.80 img/s, within
    run-to-run noise) with 255 MB less.
    """
    height, width = input_size
    return PassCost(full=0.0, low=0.0, fixed=1700.0 * height * width, base=1.0e9, cpu_max=1)
