"""Every error that asks for a flag names the flag that takes the value (not a neighbour's)."""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch

from easyvolcap import pretrained
from easyvolcap.cli import check
from easyvolcap.errors import EvcError
from easyvolcap.synthetic.capture import make_demo_dataset


def flags_named(message: str) -> set[str]:
    return set(re.findall(r"--\w+", message))


def test_check_without_its_mask_folder_names_masks_dir(tmp_path, capsys):
    root = make_demo_dataset(tmp_path / "d", cameras=2, frames=2, size=(32, 48), odd_size=None)
    assert check.main(["--data_root", str(root), "--masks_dir", "absent", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"evc-check: error: {root / 'absent'}: mask folder not found (set --masks_dir)", err


def test_schp_detector_missing_file_names_detector_chkpt_path(tmp_path):
    with pytest.raises(EvcError) as caught:
        pretrained.person_detector("torchvision", checkpoint=tmp_path / "absent.pth")
    assert flags_named(str(caught.value)) == {"--detector_chkpt_path"}, caught.value


def test_schp_detector_download_failure_names_detector_chkpt_path(tmp_path, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(EvcError) as caught:
        pretrained.person_detector("torchvision")
    message = str(caught.value)
    assert flags_named(message) == {"--detector_chkpt_path"} and "maskrcnn_resnet50_fpn_coco" in message, message


def test_schp_parser_missing_from_chkpt_dir_names_chkpt_dir(tmp_path):
    with pytest.raises(EvcError) as caught:
        pretrained.schp("lip", checkpoint_dir=tmp_path)
    assert flags_named(str(caught.value)) == {"--chkpt_dir", "--chkpt_path"}
    assert str(caught.value).startswith(f"--chkpt_dir {tmp_path}: no ")
