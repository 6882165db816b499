"""The builders of easyvolcap.pretrained: one call gives an official model ready for inference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from easyvolcap import pretrained
from easyvolcap.errors import EvcError
from easyvolcap.models._checkpoint import recognise
from easyvolcap.models.bgmv2.checkpoints import CHECKPOINTS as BGMV2
from easyvolcap.models.rvm.checkpoints import CHECKPOINTS as RVM
from easyvolcap.synthetic.weights import load_spec

PARITY = Path(__file__).parent / "parity"


@pytest.mark.parametrize(("spec", "table", "variant"), [
    ("rvm_mobilenetv3", RVM, "mobilenetv3"), ("rvm_resnet50", RVM, "resnet50"),
    ("bgmv2_mobilenetv2", BGMV2, "mobilenetv2"), ("bgmv2_resnet50", BGMV2, "resnet50"),
    ("bgmv2_resnet101", BGMV2, "resnet101")])
def test_signatures_recognise_every_official_layout(spec, table, variant):
    keys = {name for name, *_ in load_spec(PARITY / f"{spec}.keys.json")["tensors"]}
    assert recognise(keys, table) == variant


def test_rvm_builds_only_the_network_asked_for(rvm_checkpoints, monkeypatch):
    from easyvolcap.models import rvm as family

    built = []
    original = family.MattingNetwork.__init__

    def counting(self, variant="mobilenetv3", *args, **kwargs):
        built.append(variant)
        original(self, variant, *args, **kwargs)

    monkeypatch.setattr(family.MattingNetwork, "__init__", counting)
    model = pretrained.rvm("mobilenetv3", checkpoint=rvm_checkpoints["mobilenetv3"])
    assert built == ["mobilenetv3"] and not model.training
    with pytest.raises(EvcError, match=r"for variant 'resnet50'.*asked for 'mobilenetv3'"):
        pretrained.rvm("mobilenetv3", checkpoint=rvm_checkpoints["resnet50"])
    assert built == ["mobilenetv3"]  # the conflict is found from the file's keys, no network built


def test_bgmv2_backbone_comes_from_the_file_and_must_agree(bgmv2_checkpoints):
    model = pretrained.bgmv2(checkpoint=bgmv2_checkpoints["torchscript_mobilenetv2_fp16"], dtype=torch.float32)
    assert "backbone.features.0.0.weight" in model.state_dict()  # MobileNetV2's layout
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    with pytest.raises(EvcError, match="a BGMv2 resnet50 checkpoint, but backbone mobilenetv2 was asked"):
        pretrained.bgmv2(checkpoint=bgmv2_checkpoints["pytorch_resnet50"], backbone="mobilenetv2")


def test_schp_checks_the_class_count_against_the_dataset(schp_checkpoints, tmp_path):
    with pytest.raises(EvcError, match="a 18-class SCHP checkpoint \\(dataset atr\\), but --dataset lip has 20"):
        pretrained.schp("lip", checkpoint=schp_checkpoints["atr"])
    folder = schp_checkpoints["atr"].parent  # the official file name found in checkpoint_dir
    assert pretrained.schp("atr", checkpoint_dir=folder).decoder.conv4.out_channels == 18
    with pytest.raises(EvcError, match=r"exp-schp-201908270938-pascal-person-part\.pth: no such file"):
        pretrained.schp("pascal", checkpoint_dir=tmp_path)


def test_torchvision_weights_enum_gives_the_file_and_its_hash_check(tmp_path, monkeypatch):
    declared = pretrained.torchvision_maskrcnn()
    assert declared.file_name == "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" and declared.hash_prefix == "bf2d0c1e"
    assert declared.classes[1] == "person"
    seen = {}

    def corrupt_download(url, dst, hash_prefix=None, progress=True):
        seen["hash_prefix"] = hash_prefix
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "0000")')

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", corrupt_download)
    with pytest.raises(EvcError, match="does not match its sha256"):
        pretrained.person_detector("torchvision")
    assert seen["hash_prefix"] == "bf2d0c1e"


@pytest.mark.parametrize("tool", ["rvm", "bgmv2", "schp", "backgrounds", "merge", "invert", "visualize", "check"])
def test_help_and_flag_errors_answer_without_torch(tool):
    code = (f"import sys\nfrom easyvolcap.cli import {tool}\n"
            "for argv in (['--help'], ['--data_root', 'x', '--workers', '0']):\n"
            f"    try:\n        {tool}.main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
