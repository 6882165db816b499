from pathlib import Path

import pytest

from easyvolcap.errors import EvcError
from easyvolcap.layout import DatasetLayout, natural_key


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_natural_sort_orders_numbers_by_value():
    names = ["frame10.jpg", "frame2.jpg", "Frame1.png", "frame02b.jpg"]
    assert sorted(names, key=natural_key) == ["Frame1.png", "frame2.jpg", "frame02b.jpg", "frame10.jpg"]


def test_discover_lists_cameras_and_frames(tmp_path):
    for camera, frames in {"cam10": ["2.jpg", "10.JPG", "1.png"], "cam2": ["a.jpeg"]}.items():
        for frame in frames:
            touch(tmp_path / "images" / camera / frame)
    touch(tmp_path / "images" / "cam2" / ".DS_Store")
    touch(tmp_path / "images" / "cam2" / "notes.txt")
    touch(tmp_path / "images" / "cam10" / "._1.jpg")  # macOS resource fork
    touch(tmp_path / "images" / "readme.txt")  # a file beside the camera folders
    (tmp_path / "images" / "empty").mkdir()

    layout = DatasetLayout.discover(tmp_path)
    assert [c.name for c in layout.cameras] == ["cam2", "cam10"]
    assert [f.name for f in layout.cameras[1].frames] == ["1.png", "2.jpg", "10.JPG"]
    assert [f.name for f in layout.cameras[0].frames] == ["a.jpeg"]
    assert layout.skipped == ("empty",)
    assert layout.num_frames == 4


def test_output_path_maps_by_camera_and_stem(tmp_path):
    touch(tmp_path / "images" / "images_cam" / "images.jpg")
    layout = DatasetLayout.discover(tmp_path)
    frame = layout.cameras[0].frames[0]
    assert layout.output_path("rvm", "images_cam", frame, ".png") == tmp_path / "rvm" / "images_cam" / "images.png"


def test_only_selects_cameras_and_rejects_unknown(tmp_path):
    for camera in ("a", "b", "c"):
        touch(tmp_path / "images" / camera / "0.jpg")
    assert [c.name for c in DatasetLayout.discover(tmp_path, only=["c", "a"]).cameras] == ["a", "c"]
    with pytest.raises(EvcError, match="no camera folder 'z'"):
        DatasetLayout.discover(tmp_path, only=["z"])


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "not a directory"),
    (lambda root: root.mkdir(), "image folder not found"),
    (lambda root: (root / "images").mkdir(parents=True), "no camera folder with"),
    (lambda root: touch(root / "images" / "cam" / "notes.txt"), "no camera folder with"),
])
def test_bad_roots(tmp_path, setup, message):
    root = tmp_path / "root"
    setup(root)
    with pytest.raises(EvcError, match=message):
        DatasetLayout.discover(root)


def test_root_that_is_a_file(tmp_path):
    with pytest.raises(EvcError, match="not a directory"):
        DatasetLayout.discover(touch(tmp_path / "file"))


def test_same_stem_twice_is_refused(tmp_path):
    touch(tmp_path / "images" / "cam" / "000.jpg")
    touch(tmp_path / "images" / "cam" / "000.png")
    with pytest.raises(EvcError, match="share the frame name '000'"):
        DatasetLayout.discover(tmp_path)


def test_image_files_of_other_types_are_counted_and_named_once(tmp_path, capsys):
    from easyvolcap.cli import backgrounds
    from easyvolcap.synthetic.capture import make_demo_dataset

    root = make_demo_dataset(tmp_path / "d", cameras=2, frames=2, size=(24, 32), odd_size=None, ext=".png")
    for name in ("00/000000.tif", "00/extra.WEBP", "01/000001.bmp", "01/a.webp", "01/.hidden.tiff"):
        touch(root / "images" / name)
    assert DatasetLayout.discover(root).unread == ((".bmp", 1), (".tif", 1), (".webp", 2))
    assert backgrounds.main(["--data_root", str(root), "--masks_dir", "gt_masks", "--mask_ext", ".png",
                             "--no_preview"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bkgd: warning: 4 image files of types not read in the camera folders (1 .bmp, 1 .tif, 2 .webp); "
                   "only .jpg/.jpeg/.png frames are used"]
