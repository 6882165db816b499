"""The readme's chain: RVM masks -> per-camera backgrounds -> BGMv2 masks, on one synthetic capture."""

from __future__ import annotations

import cv2

from easyvolcap.cli import backgrounds, bgmv2, rvm
from easyvolcap.synthetic.capture import make_demo_dataset


def test_masks_then_backgrounds_then_bgmv2(tmp_path, rvm_checkpoints, bgmv2_checkpoints, capsys):
    data = make_demo_dataset(tmp_path / "data", cameras=3, frames=6, size=(48, 64), odd_size=(42, 58))
    common = ["--data_root", str(data), "--workers", "2"]
    assert rvm.main([*common, "--mask_dir", "rvm", "--variant", "mobilenetv3", "--device", "cpu",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"])]) == 0
    assert backgrounds.main([*common, "--masks_dir", "rvm", "--bkgd_dir", "bkgd", "--jump", "2"]) == 0
    assert bgmv2.main([*common, "--bkgd_dir", "bkgd", "--mask_dir", "bgmtv2", "--device", "cpu",
                       "--chkpt_path", str(bgmv2_checkpoints["torchscript_mobilenetv2_fp32"])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["rvm", "bkgd", "bgmv2"]
    for camera, size in {"00": (48, 64), "01": (48, 64), "02": (42, 58)}.items():
        for stage in ("rvm", "bgmtv2"):
            files = sorted((data / stage / camera).iterdir())
            assert [f.name for f in files] == [f"{i:06d}.jpg" for i in range(6)]
            assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape == size
        background = cv2.imread(str(data / "bkgd" / f"{camera}.png"), cv2.IMREAD_UNCHANGED)
        assert background.shape == (*size, 4)


def test_calibrated_chain_masks_check_repair_backgrounds_bgmv2_review(tmp_path, rvm_checkpoints, bgmv2_checkpoints,
                                                                      capsys):
    """The readme's calibrated chain: RVM -> check with repair -> backgrounds from the repaired masks -> BGMv2
    -> check of BGMv2's masks -> one review video."""
    from easyvolcap.cli import check, visualize
    from easyvolcap.synthetic.scene import make_scene, write_scene

    data = write_scene(tmp_path / "ring", make_scene(5, 3, (60, 80)), "gt_masks", ".png", images=True)
    common = ["--data_root", str(data), "--workers", "2"]
    assert rvm.main([*common, "--mask_dir", "rvm", "--variant", "mobilenetv3", "--device", "cpu",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"])]) == 0
    assert check.main([*common, "--masks_dir", "rvm", "--repair_dir", "rvm_fixed", "--device", "cpu"]) == 0
    assert backgrounds.main([*common, "--masks_dir", "rvm_fixed", "--bkgd_dir", "bkgd"]) == 0
    assert bgmv2.main([*common, "--bkgd_dir", "bkgd", "--mask_dir", "bgmtv2", "--device", "cpu",
                       "--chkpt_path", str(bgmv2_checkpoints["torchscript_mobilenetv2_fp32"])]) == 0
    assert check.main([*common, "--masks_dir", "bgmtv2", "--device", "cpu", "--no_preview"]) == 0
    assert visualize.main([*common, "--mask_dir", "bgmtv2", "--output", str(tmp_path / "review.mp4")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["rvm", "check", "bkgd", "bgmv2", "check", "visualize"]
    assert "multi-view and temporal" in lines[1] and "15 masks" in lines[1]
    for camera in ("00", "01", "02", "03", "04"):
        assert sorted(p.name for p in (data / "rvm_fixed" / camera).iterdir()) == [f"{i:06d}.jpg" for i in range(3)]
        assert (data / "bkgd" / f"{camera}.png").is_file()
    assert (data / "check" / "rvm.csv").is_file() and (data / "check" / "bgmtv2.csv").is_file()
    assert (tmp_path / "review.mp4").stat().st_size > 0
