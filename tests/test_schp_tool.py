"""The SCHP tool: golden single-person path, restore geometry with stubs, detectors, outputs, faults."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from goldens import Golden
from PIL import Image
from stubs import BoxDetector, ColourParser

from easyvolcap.cli.schp import main
from easyvolcap.detectors import Person, TorchvisionDetector, WholeFrameDetector, suppress_covered
from easyvolcap.errors import EvcError
from easyvolcap.image_io import write_image
from easyvolcap.layout import DatasetLayout
from easyvolcap.models.schp import get_palette, label_set
from easyvolcap.models.schp.restore import Crop, FrameCanvas, expand_box
from easyvolcap.pretrained import person_detector
from easyvolcap.runners.schp import SchpOptions, run_schp
from easyvolcap.synthetic.capture import make_demo_dataset
from easyvolcap.synthetic.weights import synth_state_dict

PARITY = Path(__file__).parent / "parity"


def schp(root: Path, checkpoint: Path, *extra: str) -> int:
    return main(["--data_root", str(root), "--chkpt_path", str(checkpoint), "--device", "cpu", "--workers", "2",
                 *extra])


def test_single_person_path_matches_upstream_golden(tmp_path, schp_checkpoints, capsys):
    golden = Golden(PARITY / "schp_lip.golden.npz")
    write_image(tmp_path / "images" / "cam" / "frame.png", golden["ns_image_bgr_u8"][..., ::-1].copy())
    assert schp(tmp_path, schp_checkpoints["lip"], "--dataset", "lip", "--detector", "none",
                "--logits_dir", "logits") == 0
    labels = np.asarray(Image.open(tmp_path / "schp" / "cam" / "frame.png"))
    want = golden["ns_label"]
    near_tie = golden["ns_label_margin"].astype(np.float32) < 1e-4
    assert labels.shape == want.shape and np.array_equal(labels[~near_tie], want[~near_tie])
    mask = cv2.imread(str(tmp_path / "mask" / "cam" / "frame.png"), cv2.IMREAD_UNCHANGED)
    assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255} and np.array_equal(mask > 0, labels > 0)
    logits = np.load(tmp_path / "logits" / "cam" / "frame.npy")
    assert logits.dtype == np.float16 and logits.shape == (200, 150, 20)
    clear = golden["ns_label_margin"].astype(np.float32) > 0.02  # beyond float16 rounding of logits up to ~8
    assert np.array_equal(logits.astype(np.float32).argmax(-1)[clear], labels[clear])
    out = capsys.readouterr().out
    assert out.startswith(f"schp: wrote 1 label maps to {tmp_path / 'schp'} and masks to {tmp_path / 'mask'}")
    assert "1 people parsed" in out


def test_default_restore_matches_upstream_golden_with_upstream_colours(tmp_path, schp_checkpoints):
    """Without --logits_dir the restore warps only the classes that can win: still upstream's labels,
    written as a palette PNG with upstream's colours."""
    golden = Golden(PARITY / "schp_lip.golden.npz")
    write_image(tmp_path / "images" / "cam" / "frame.png", golden["ns_image_bgr_u8"][..., ::-1].copy())
    assert schp(tmp_path, schp_checkpoints["lip"], "--dataset", "lip", "--detector", "none") == 0
    image = Image.open(tmp_path / "schp" / "cam" / "frame.png")
    assert image.mode == "P"
    labels = np.asarray(image)
    want = golden["ns_label"]
    near_tie = golden["ns_label_margin"].astype(np.float32) < 1e-4
    assert labels.shape == want.shape and np.array_equal(labels[~near_tie], want[~near_tie])
    assert len(np.unique(want)) > 2  # several classes compete: the pruning has work to do
    colours = np.asarray(image.convert("RGB"))
    assert np.array_equal(colours, get_palette(20)[labels])
    assert np.array_equal(get_palette(20), golden["palette"])


def scene_with_two_people(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 90x120 frame: a red person touching the left border, a green one overlapping its box."""
    image = np.full((90, 120, 3), 40, np.uint8)
    red = np.zeros((90, 120), bool)
    red[10:80, 0:30] = True
    green = np.zeros((90, 120), bool)
    green[20:88, 40:70] = True
    image[red] = (230, 20, 20)
    image[green] = (20, 230, 20)
    write_image(root / "images" / "cam" / "000000.png", image)
    write_image(root / "images" / "cam" / "000001.png", np.full((90, 120, 3), 40, np.uint8))  # nobody
    return red, green


@pytest.mark.parametrize("restore", ["logits", "labels"])
def test_restore_geometry_at_borders_and_overlaps(tmp_path, restore):
    red, green = scene_with_two_people(tmp_path)
    people = {0: [Person((0.0, 10.0, 29.0, 79.0), 0.9), Person((25.0, 20.0, 69.0, 87.0), 0.8)]}
    parser = ColourParser()
    report = run_schp(DatasetLayout.discover(tmp_path), BoxDetector(people), parser, label_set("cihp"),
                      torch.device("cpu"), torch.float32, SchpOptions(restore=restore, batch_size=1))
    labels = np.asarray(Image.open(tmp_path / "schp" / "cam" / "000000.png"))
    inner = lambda m: cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # noqa: E731
    near = lambda m: cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # noqa: E731
    assert (labels[inner(red)] == 1).all()  # the red person, clamped at the left border
    green_in_box = green.copy()
    green_in_box[:, 70:] = False
    assert (labels[inner(green_in_box)] == 2).all()
    assert (labels[~near(red) & ~near(green)] == 0).all()
    assert parser.calls == [1, 1]  # two crops, one per pass
    assert report.people == 2 and report.frames_without_person == [("cam", "000001")]
    empty = cv2.imread(str(tmp_path / "mask" / "cam" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert empty.shape == (90, 120) and not empty.any()


def test_a_crops_background_never_erases_another_person():
    canvas = FrameCanvas(4, 6, 20, keep_logits=False)
    first = Crop((0, 0, 3, 3), np.eye(2, 3), np.eye(2, 3))
    canvas.paste(first, np.full((4, 4), 5, np.uint8), np.full((4, 4), 0.6, np.float32), None)
    second = Crop((2, 0, 5, 3), np.eye(2, 3), np.eye(2, 3))
    labels = np.array([[0, 0, 7, 7]] * 2 + [[9, 9, 7, 7]] * 2, np.uint8)
    confidence = np.array([[0.99] * 4] * 2 + [[0.5, 0.9, 0.9, 0.9]] * 2, np.float32)
    canvas.paste(second, labels, confidence, None)
    assert canvas.labels.tolist() == [
        [5, 5, 5, 5, 7, 7],  # the second crop's confident background does not erase person 1
        [5, 5, 5, 5, 7, 7],
        [5, 5, 5, 9, 7, 7],  # where both see a person, the more confident label wins
        [5, 5, 5, 9, 7, 7],
    ]


def test_mask_nms_and_box_expansion_follow_upstream():
    a = np.zeros((10, 10), bool)
    a[0:6, 0:6] = True
    b = np.zeros((10, 10), bool)
    b[1:6, 1:6] = True  # entirely inside a: dropped
    c = np.zeros((10, 10), bool)
    c[4:10, 4:10] = True  # 4 of 36 pixels covered: kept
    people = [Person((0, 0, 5, 5), 0.9, a), Person((1, 1, 5, 5), 0.8, b), Person((4, 4, 9, 9), 0.7, c)]
    assert [p.score for p in suppress_covered(people)] == [0.9, 0.7]
    assert expand_box((10.0, 20.0, 30.0, 60.0), 100, 100) == (8, 16, 32, 64)
    assert expand_box((1.0, 2.0, 95.0, 97.5), 100, 100) == (0, 0, 99, 99)  # clamped to the image
    assert expand_box((12.5, 0.0, 17.5, 10.0), 100, 100) == (12, 0, 18, 11)  # round half to even


def test_torchvision_detector_runs_on_cpu_with_synthesized_weights(tmp_path):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    keys = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    torch.save(synth_state_dict({"tensors": [[k, list(v.shape), str(v.dtype)[6:]] for k, v in keys.items()]}),
               tmp_path / "maskrcnn.pth")
    detector = person_detector("torchvision", checkpoint=tmp_path / "maskrcnn.pth", device=torch.device("cpu"))
    assert isinstance(detector, TorchvisionDetector)
    make_demo_dataset(tmp_path / "d", cameras=1, frames=2, size=(48, 64), odd_size=None)
    report = run_schp(DatasetLayout.discover(tmp_path / "d"), detector, ColourParser(), label_set("cihp"),
                      torch.device("cpu"), torch.float32, SchpOptions(frames_per_batch=2))
    assert report.frames_processed == 2
    people = detector.detect([np.zeros((48, 64, 3), np.uint8)])
    assert len(people) == 1 and all(p.score >= 0.5 and p.mask.shape == (48, 64) for p in people[0])
    assert len(list((tmp_path / "d" / "mask" / "00").iterdir())) == 2


def test_resume_gives_identical_files(tmp_path):
    scene_with_two_people(tmp_path)
    people = {0: [Person((0.0, 10.0, 29.0, 79.0), 0.9)], 2: [Person((25.0, 20.0, 69.0, 87.0), 0.8)]}
    first = cv2.imread(str(tmp_path / "images" / "cam" / "000000.png"))[..., ::-1]
    write_image(tmp_path / "images" / "cam" / "000002.png", np.ascontiguousarray(first))
    options = SchpOptions(frames_per_batch=2, logits_dir="logits")
    layout = DatasetLayout.discover(tmp_path)
    cpu = torch.device("cpu")
    run_schp(layout, BoxDetector(people), ColourParser(), label_set("cihp"), cpu, torch.float32, options)
    files = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and "images" not in p.parts}
    assert len(files) == 9
    (tmp_path / "schp" / "cam" / "000002.png").unlink()
    (tmp_path / "mask" / "cam" / "000002.png").unlink()
    kept = {p: p.stat().st_mtime_ns for p in files if p.exists()}
    report = run_schp(layout, BoxDetector({0: people[2]}), ColourParser(), label_set("cihp"), cpu, torch.float32,
                      options)
    assert {p: p.read_bytes() for p in files} == files
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert report.frames_processed == 1 and report.frames_written == 1


class FlakyBoxDetector(BoxDetector):
    """A stub detector that runs out of memory on passes of more than ``oom_above`` frames."""

    def __init__(self, people: dict[int, list[Person]], oom_above: int | None = None) -> None:
        super().__init__(people)
        self.oom_above, self.calls = oom_above, []

    def detect(self, images):
        self.calls.append(len(images))
        if self.oom_above is not None and len(images) > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().detect(images)


def test_detector_out_of_memory_halves_the_frames_per_pass(tmp_path, capsys):
    scene_with_two_people(tmp_path)
    for t in (2, 3, 4):
        first = cv2.imread(str(tmp_path / "images" / "cam" / "000000.png"))[..., ::-1]
        write_image(tmp_path / "images" / "cam" / f"00000{t}.png", np.ascontiguousarray(np.roll(first, t, axis=1)))
    people = {t: [Person((float(t), 10.0, 29.0 + t, 79.0), 0.9)] for t in (0, 2, 3, 4)}
    layout = DatasetLayout.discover(tmp_path)
    cpu = torch.device("cpu")

    def run(folder: str, detector: FlakyBoxDetector) -> dict[str, bytes]:
        run_schp(layout, detector, ColourParser(), label_set("cihp"), cpu, torch.float32,
                 SchpOptions(mask_dir=f"{folder}_mask", schp_dir=f"{folder}_schp", frames_per_batch=4))
        return {str(p.relative_to(tmp_path / f"{folder}_schp")): p.read_bytes()
                for p in sorted((tmp_path / f"{folder}_schp").rglob("*.png"))}

    whole = run("whole", FlakyBoxDetector(people))
    flaky = FlakyBoxDetector(people, oom_above=1)
    assert run("flaky", flaky) == whole and len(whole) == 5
    assert flaky.calls == [4, 2, 1, 1, 1, 1, 1]  # 4 -> 2 -> 1, then the last frame alone
    err = capsys.readouterr().err
    assert err.count("out of device memory: lowering the batch to 2 frames per detector pass") == 1
    with pytest.raises(EvcError, match="out of device memory with one frame per detector pass"):
        run("never", FlakyBoxDetector(people, oom_above=0))


class FineFusionParser(ColourParser):
    """A parser whose fusion map is finer than its input: the restore's pruning bound does not hold."""

    def forward(self, x):
        (parsing, fusion), edge = super().forward(x)
        fusion = torch.nn.functional.interpolate(fusion, scale_factor=2.0, mode="nearest")
        return [[parsing, fusion], edge]


def test_a_fusion_map_finer_than_the_input_is_refused(tmp_path):
    scene_with_two_people(tmp_path)
    with pytest.raises(EvcError, match="fusion map is 946x946, finer than its 473x473 input"):
        run_schp(DatasetLayout.discover(tmp_path), WholeFrameDetector(), FineFusionParser(), label_set("cihp"),
                 torch.device("cpu"), torch.float32, SchpOptions())


def test_detectron2_missing_is_one_line(tmp_path, schp_checkpoints, capsys):
    make_demo_dataset(tmp_path / "d", cameras=1, frames=1, size=(48, 64), odd_size=None)
    assert schp(tmp_path / "d", schp_checkpoints["lip"], "--detector", "detectron2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs detectron2, which is not installed; install it with pip install" in err[0]


def test_checkpoint_of_another_label_set_is_refused(tmp_path, schp_checkpoints, capsys):
    make_demo_dataset(tmp_path / "d", cameras=1, frames=1, size=(48, 64), odd_size=None)
    assert schp(tmp_path / "d", schp_checkpoints["atr"], "--dataset", "lip", "--detector", "none") == 1
    assert "a 18-class SCHP checkpoint (dataset atr), but --dataset lip has 20 classes" in capsys.readouterr().err
    assert schp(tmp_path / "d", tmp_path / "nothing.pth", "--detector", "none") == 1
    assert "no such file" in capsys.readouterr().err


def test_missing_default_checkpoint_says_where_to_get_it(tmp_path, capsys):
    make_demo_dataset(tmp_path / "d", cameras=1, frames=1, size=(48, 64), odd_size=None)
    assert main(["--data_root", str(tmp_path / "d"), "--chkpt_dir", str(tmp_path / "weights"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "--chkpt_path" in err and "exp_schp_multi_cihp_local.pth" in err and "no such file" in err


@pytest.mark.parametrize("mode", ["logits", "labels"])
def test_restore_computes_confidence_only_where_crops_overlap(mode):
    from easyvolcap.models.schp import logits_to_image
    from easyvolcap.models.schp.restore import crop_overlaps, make_crop, restore_crop

    rng = np.random.default_rng(3)
    logits = cv2.GaussianBlur((rng.standard_normal((40, 40, 20)) * 4).astype(np.float32), (0, 0), 2)
    logits = np.ascontiguousarray(np.moveaxis(logits, -1, 0))  # [C, H, W]
    a = make_crop((0.0, 0.0, 59.0, 49.0), 100, 60, (40, 40))
    b = make_crop((50.0, 10.0, 99.0, 59.0), 100, 60, (40, 40))
    shared_a, shared_b = crop_overlaps([a, b], 60, 100)
    assert shared_a.shape == (a.size[1], a.size[0]) and shared_b.shape == (b.size[1], b.size[0])
    ys, xs = np.mgrid[a.box[1]:a.box[3] + 1, a.box[0]:a.box[2] + 1]
    in_b = (xs >= b.box[0]) & (xs <= b.box[2]) & (ys >= b.box[1]) & (ys <= b.box[3])
    assert in_b.any() and not in_b.all()
    np.testing.assert_array_equal(shared_a, in_b)

    labels, confidence, kept = restore_crop(logits, a, mode, keep_logits=True, confidence_at=shared_a)
    full_labels, full_confidence, full_kept = restore_crop(logits, a, mode, keep_logits=True)
    np.testing.assert_array_equal(labels, full_labels)
    np.testing.assert_array_equal(kept, full_kept)
    np.testing.assert_array_equal(confidence[shared_a], full_confidence[shared_a])
    assert not confidence[~shared_a].any()
    if mode == "logits":  # upstream simple_extractor: argmax of the warped logits; confidence = its softmax
        warped = logits_to_image(logits, a.inv_trans, a.size)
        np.testing.assert_array_equal(labels, warped.argmax(axis=0))
        softmax = np.exp(warped - warped.max(axis=0)) / np.exp(warped - warped.max(axis=0)).sum(axis=0)
        np.testing.assert_allclose(full_confidence, softmax.max(axis=0), rtol=1e-5)
        np.testing.assert_array_equal(kept, np.moveaxis(warped, 0, -1))


@pytest.mark.parametrize("seed", range(6))
def test_warping_only_the_classes_that_can_win_gives_the_same_labels(seed):
    from easyvolcap.models.schp import logits_to_image, upsample_logits
    from easyvolcap.models.schp.restore import candidate_classes, make_crop, restore_crop

    rng = np.random.default_rng(seed)
    fusion = (rng.standard_normal((15, 15, 20)) * 0.5 - 4).astype(np.float32)  # negative: the border's 0 wins
    fusion[..., 0] += 3  # background dominates where no part does
    for cls in rng.choice(np.arange(1, 20), 4, replace=False):  # a few parts win somewhere, as in a person crop
        fusion[..., cls] += 12 * cv2.GaussianBlur((rng.random((15, 15)) > 0.7).astype(np.float32), (0, 0), 1)
    classes = candidate_classes(fusion)
    assert classes[0] == 0 and 4 <= len(classes) < 20
    logits = upsample_logits(torch.from_numpy(fusion).permute(2, 0, 1)[None], (60, 60))[0].numpy()
    box = [(5.0, 3.0, 150.0, 94.0), (0.0, 0.0, 159.0, 99.0), (100.0, 40.0, 120.0, 99.0)][seed % 3]
    crop = make_crop(box, 160, 100, (60, 60))
    nowhere = np.zeros((crop.size[1], crop.size[0]), bool)
    labels, confidence, kept = restore_crop(logits, crop, "logits", False, nowhere, classes)
    upstream = logits_to_image(logits, crop.inv_trans, crop.size).argmax(axis=0)
    np.testing.assert_array_equal(labels, upstream)
    assert kept is None and not confidence.any()
    assert set(np.unique(upstream)) <= set(classes.tolist())
