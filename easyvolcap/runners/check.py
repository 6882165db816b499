"""The mask check as a job: every frame's masks against each other (multi-view, with calibration) and
every camera's mask area against its neighbours in time; per-frame results, the CSV report, repairs.

Per-frame results go to ``<root>/check/<masks_dir>/<frame>.json`` (atomic) as they are computed, so an
interrupted run resumes and ``--shard I/N`` runs (over frames) add up; the run that finds every frame
done writes ``<root>/check/<masks_dir>.csv`` (and the picture) from them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..calibration import Calibration, field_radius2, looking_away, read_calibration, viewing_box
from ..errors import EvcError
from ..image_io import atomic_write, image_size, read_gray, to_8bit, write_image
from ..layout import DatasetLayout, natural_key
from ..masks import level
from ..multiview import MIN_VIEWS, MV_FLAGS, CheckParams, FrameGeometry, check_frame, repair_mask
from ..overlap import check_overlap
from ..parallel import prefetch_map
from ..progress import progress_bar, set_progress
from .common import clear_stale_temp_files

__all__ = ["FLAGS", "CheckOptions", "CheckReport", "run_check"]

FLAGS = ("garbage", *MV_FLAGS, "temporal")  # precedence order
FULL = 0.95  # a mask covering this share of its image is not a person's: garbage
NOISE_PARTS, NOISE_EDGE = 20, 0.5  # this many parts with this share of the area on an edge: noise, garbage
TEMPORAL_RATIO = 1.6  # an area this many times above or below its neighbours' median jumps
COLUMNS = ("camera", "frame", "flag", "score", "area", "consensus_area", "extra", "missing", "iou", "shift_x",
           "shift_y", "shift_gain", "shift_fix", "temporal_ratio", "voted", "why")


@dataclass(frozen=True)
class CheckOptions:
    """What to check and where results go."""

    masks_dir: str = "rvm"  # RVM's output, the chain's previous step
    mask_ext: str | None = None  # None: every mask type the folder holds
    threshold: float = 0.5  # foreground above this fraction of full scale (easyvolcap.masks.level)
    repair_dir: str | None = None
    device: str | None = None
    workers: int = 4
    overwrite: bool = False
    quality: int = 85  # JPEG quality of repaired masks
    work_size: int = 240  # long side (pixels) of the working masks the vote uses
    only: tuple[str, ...] | None = None
    shard: tuple[int, int] | None = None
    preview: bool = True


@dataclass
class CheckReport:
    """What a run did; ``rows`` (one dict per camera and frame) and ``csv`` are set once every frame is done."""

    frames_total: int = 0
    frames_checked: int = 0  # by this run
    frames_resumed: int = 0
    frames_fewer_cameras: int = 0
    frames_too_few_views: int = 0  # calibrated, but fewer than MIN_VIEWS cameras: temporal check only
    masks_checked: int = 0
    repaired: int = 0
    copied: int = 0
    calibrated: bool = False
    notices: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    rows_kept: int = 0  # rows of other cameras kept from the last report (a run with --only)
    csv: Path | None = None
    preview: Path | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class _Setup:
    """Everything the per-frame work needs, found once."""

    layout: DatasetLayout
    frames: list[str]  # stems, naturally sorted
    paths: dict[str, dict[str, Path]]  # frame -> camera -> mask path
    sizes: dict[str, tuple[int, int]]  # camera -> (H, W)
    factors: dict[str, int]  # camera -> decode reduction 1, 2, 4 or 8
    calibration: Calibration | None  # of the cameras that have masks, in layout order
    geometry: dict | None  # numpy arrays per camera for FrameGeometry


def _settings(setup: _Setup, options: CheckOptions) -> dict:
    """What, besides its masks, produced a frame's result: the flags, the thresholds, the voting cameras."""
    return {"threshold": options.threshold, "work_size": options.work_size, "params": asdict(CheckParams()),
            "voting": list(setup.calibration.names) if setup.calibration is not None else None}


def _inputs(setup: _Setup, frame: str) -> dict[str, list[int]]:
    """Size and modification time of every input of a frame's result: its masks and the calibration files."""
    files = {name: path for name, path in setup.paths[frame].items()}
    files.update({name: setup.layout.root / name for name in ("intri.yml", "extri.yml")})
    out = {}
    for name, path in files.items():
        try:
            stat = path.stat()
            out[name] = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            out[name] = [-1, -1]
    return out


def _factor(size: tuple[int, int], work_size: int) -> int:
    factor = 1
    while factor < 8 and max(size) / (factor * 2) >= work_size:
        factor *= 2
    return factor


def _setup(root: Path, options: CheckOptions, tool: str) -> tuple[_Setup, list[str]]:
    from ..image_io import MASK_EXTENSIONS

    notices = []
    extensions = (options.mask_ext,) if options.mask_ext else (*MASK_EXTENSIONS, ".jpeg")
    layout = DatasetLayout.discover(root, options.masks_dir, list(options.only) if options.only else None, extensions,
                                    flag="--masks_dir", kind="mask")
    for camera in layout.skipped:
        notices.append(f"warning: camera {camera} has no masks; skipped")
    names = [camera.name for camera in layout.cameras]
    paths: dict[str, dict[str, Path]] = {}
    for camera in layout.cameras:
        for frame in camera.frames:
            paths.setdefault(frame.stem, {})[camera.name] = frame
    frames = sorted(paths, key=natural_key)
    calibration = read_calibration(root)
    sizes = {camera.name: camera.size() for camera in layout.cameras}
    if calibration is None:
        notices.append("notice: no intri.yml/extri.yml: temporal check only (the multi-view check needs "
                       "intri.yml and extri.yml at the data root)")
    else:
        missing = [name for name in names if name not in calibration.names]
        unused = [name for name in calibration.names if name not in names and not options.only]
        if missing:
            notices.append(f"warning: cameras {', '.join(missing)} have masks but no calibration; "
                           "checked in time only")
        if unused:
            notices.append(f"warning: cameras {', '.join(unused)} are calibrated but have no masks; not used")
        shared = [name for name in names if name in calibration.names]
        for name in shared:
            i = calibration.names.index(name)
            height, width = int(calibration.H[i]), int(calibration.W[i])
            if height and width and (height, width) != sizes[name]:
                first = layout.cameras[names.index(name)].frames[0]
                raise EvcError(f"{first}: mask is {sizes[name][1]}x{sizes[name][0]}, but {root / 'intri.yml'} "
                               f"gives H_{name}={height}, W_{name}={width}")
        calibration = (calibration.subset(shared).with_sizes([sizes[n] for n in shared]) if len(shared) >= MIN_VIEWS
                       else None)
        if calibration is not None:
            calibration, lines = _rig_sanity(calibration, root)
            notices += lines
        if calibration is None:
            notices.append(f"notice: fewer than {MIN_VIEWS} calibrated cameras with masks: temporal check only (a vote "
                           "of fewer views cannot outweigh one wrong mask)")
    factors = {name: _factor(size, options.work_size) for name, size in sizes.items()}
    return _Setup(layout, frames, paths, sizes, factors, calibration, _geometry(calibration, sizes, factors)), notices


def _geometry(calibration: Calibration | None, sizes: dict, factors: dict) -> dict | None:
    """The cameras scaled to their working masks (numpy arrays for :class:`FrameGeometry`)."""
    if calibration is None:
        return None
    work = [(math.ceil(sizes[n][0] / factors[n]), math.ceil(sizes[n][1] / factors[n])) for n in calibration.names]
    scale = np.array([np.diag([w[1] / sizes[n][1], w[0] / sizes[n][0], 1.0])
                      for n, w in zip(calibration.names, work, strict=True)])
    return {"K": scale @ calibration.K, "R": calibration.R, "T": calibration.T, "D": calibration.D,
            "sizes": np.array(work), "max_radius2": field_radius2(calibration), "box": viewing_box(calibration)}


SAMPLES = 5  # frames spread over the run that test each camera's agreement with the others before the check
DISAGREE = 0.1  # IoU with the others' consensus below which a camera disagrees in a frame


def _agreement(setup: _Setup, options: CheckOptions, device, root: Path,
               votes: dict | None = None) -> tuple[_Setup, list[str]]:
    """Leave out of the vote the cameras whose masks disagree with the others' consensus in every sampled frame
    where both see the person: a wrong calibration (a zero rotation, a swapped camera) looks like that, and
    repairing every mask of such a camera from the others would wipe good masks. The sampled frames' masks and
    votes go to ``votes`` (``{frame: (masks, vote)}``) for the check to reuse when no camera is left out."""
    if setup.calibration is None:
        return setup, []
    frames = [f for f in setup.frames if sum(n in setup.calibration.names for n in setup.paths[f]) >= MIN_VIEWS]
    picks = sorted({frames[round(i * (len(frames) - 1) / max(1, SAMPLES - 1))] for i in range(SAMPLES)} if frames
                   else set(), key=natural_key)
    ious: dict[str, list[float]] = {}

    def sample(frame: str):
        inputs = _inputs(setup, frame)
        masks = _frame_masks(setup, options, frame)
        return frame, inputs, masks, _vote(setup, masks, device, {n for n, m in masks.items() if garbage(m)})

    with _one_thread_per_vote(device):  # the sampled frames in parallel, as the check's frames
        for frame, inputs, masks, voted in prefetch_map(sample, picks, options.workers, options.workers):
            if votes is not None:
                votes[frame] = (inputs, masks, voted)
            if voted is None:
                continue
            names, result = voted
            for i, name in enumerate(names):
                if result.consensus_area[i] >= CheckParams().min_area and result.area[i] >= CheckParams().min_area:
                    ious.setdefault(name, []).append(float(result.iou[i]))
    away = [name for name, values in ious.items() if max(values) < DISAGREE]
    if not away or len(away) * 3 > len(setup.calibration):  # a third or more: the masks, not the cameras
        return setup, []
    kept = [name for name in setup.calibration.names if name not in away]
    if votes is not None:
        votes.clear()  # other voters: the sampled votes do not hold
    calibration = setup.calibration.subset(kept) if len(kept) >= MIN_VIEWS else None
    line = (f"warning: cameras {', '.join(away)} disagree with the others' consensus in every sampled frame (IoU "
            f"below {DISAGREE}): calibration in {root / 'extri.yml'} wrong (or every mask)? checked in time only")
    return replace(setup, calibration=calibration,
                   geometry=_geometry(calibration, setup.sizes, setup.factors)), [line]


def _rig_sanity(calibration: Calibration, root: Path) -> tuple[Calibration | None, list[str]]:
    """The cameras that look at the rig's subject (:func:`looking_away`); a line for each one left out, or for the
    whole rig when fewer than ``MIN_VIEWS`` remain (``None``: temporal check only)."""
    point, away = looking_away(calibration)
    if not away:
        return calibration, []
    where = ", ".join(f"{x:.2f}" for x in point)
    if len(calibration) - len(away) < MIN_VIEWS:
        return None, [f"notice: the cameras of {root / 'extri.yml'} do not look at a common subject (the point "
                      f"nearest their optical axes, ({where}), is in view of {len(calibration) - len(away)} of "
                      f"{len(calibration)}): wrong rotations (flipped, zero)? multi-view check skipped, temporal only"]
    names = [calibration.names[i] for i in away]
    kept = [name for name in calibration.names if name not in names]
    return calibration.subset(kept), [f"warning: cameras {', '.join(names)} do not look at the rig's subject "
                                      f"({where}) in {root / 'extri.yml'}: wrong rotation? checked in time only"]


def _read_work_mask(path: Path, factor: int, size: tuple[int, int], threshold: float) -> np.ndarray:
    """The working mask: decoded at 1/``factor`` size (JPEG's DCT scaling), binarised at ``threshold``."""
    flags = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
             8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[factor]
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as error:
        raise EvcError(f"{path}: cannot read ({error.strerror or error})") from error
    sixteen = data.size > 24 and data[:4].tobytes() == b"\x89PNG" and data[24] == 16
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH if sixteen else flags) if data.size else None
    if mask is None:
        raise EvcError(f"{path}: not a readable image")
    mask = to_8bit(mask)
    want = (math.ceil(size[0] / factor), math.ceil(size[1] / factor))
    if mask.shape != want:
        full = image_size(path)
        if full != size:
            raise EvcError(f"{path}: mask is {full[1]}x{full[0]}, the camera's masks are {size[1]}x{size[0]}")
        mask = cv2.resize(mask, (want[1], want[0]), interpolation=cv2.INTER_AREA)
    if mask.max() == 1:  # a 0/1 label mask
        mask = mask * 255
    return mask > level(threshold)


def _frame_masks(setup: _Setup, options: CheckOptions, frame: str) -> dict[str, np.ndarray]:
    return {name: _read_work_mask(path, setup.factors[name], setup.sizes[name], options.threshold)
            for name, path in setup.paths[frame].items()}


def garbage(mask: np.ndarray) -> str:
    """Why a working mask (bool) cannot be a mask of people: ``"all foreground"``, ``"noise"`` (many small parts,
    mostly edge), or ``""``."""
    area = int(mask.sum())
    if area >= FULL * mask.size:
        return "all foreground"
    if area < 4 * NOISE_PARTS:
        return ""
    image = mask.astype(np.uint8)
    parts = cv2.connectedComponents(image, connectivity=8)[0] - 1
    edge = area - int(cv2.erode(image, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).sum())
    return "noise" if parts >= NOISE_PARTS and edge >= NOISE_EDGE * area else ""


def _vote(setup: _Setup, masks: dict[str, np.ndarray], device, junk: set[str] = frozenset()):
    """``(names, FrameCheck)`` for the calibrated cameras of a frame, or ``None`` with fewer than ``MIN_VIEWS``."""
    import torch

    names = [name for name in setup.calibration.names if name in masks] if setup.calibration else []
    if len(names) < MIN_VIEWS:
        return None
    index = [setup.calibration.names.index(name) for name in names]
    g = setup.geometry
    geometry = FrameGeometry.build(g["K"][index], g["R"][index], g["T"][index], g["D"][index], g["sizes"][index],
                                   g["max_radius2"][index], g["box"], device)
    height, width = (int(x) for x in g["sizes"][index].max(0))
    stack = np.zeros((len(names), height, width), bool)
    for i, name in enumerate(names):
        if name not in junk:  # a garbage mask does not vote (it counts as empty)
            mask = masks[name]
            stack[i, :mask.shape[0], :mask.shape[1]] = mask
    return names, check_frame(torch.from_numpy(stack).to(device), geometry)


@contextmanager
def _one_thread_per_vote(device):
    """On the CPU, each vote's small tensors in one thread (as fast, and much faster on a busy machine): the
    cores go to frames in parallel instead."""
    import torch

    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _frame_result(setup: _Setup, options: CheckOptions, frame: str, masks: dict[str, np.ndarray], device,
                  inputs: dict[str, list[int]], voted=False):
    """The per-frame record (JSON-able; ``inputs``: the fingerprints of what was read) and the vote (for repairs;
    given as ``voted`` when already taken)."""
    junk = {name: why for name, mask in masks.items() if (why := garbage(mask))}
    voted = _vote(setup, masks, device, set(junk)) if voted is False else voted
    cameras = {}
    for name, mask in masks.items():
        cameras[name] = {"area": float(mask.mean())}
    if voted is not None:
        names, result = voted
        for i, name in enumerate(names):
            if name in junk:
                continue
            height, width = setup.sizes[name]
            work = masks[name].shape
            cameras[name].update({
                "consensus_area": float(result.consensus_area[i] / (work[0] * work[1])),
                "extra": float(result.extra[i]), "missing": float(result.missing[i]), "iou": float(result.iou[i]),
                "shift_x": float(result.shift[i][1] * width / work[1]),
                "shift_y": float(result.shift[i][0] * height / work[0]),
                "shift_gain": float(result.shift_gain[i]), "shift_fix": float(result.shift_fix[i]),
                "score": float(result.score[i]),
                "flags": result.flags[i], "voted": bool(result.voters[i]),
                "why": _why(result, i, int(result.voters.sum()) - bool(result.voters[i]))})
    for name, why in junk.items():
        cameras[name].update(flags=["garbage"], score=0.0,
                             why=f"garbage ({why}): left out of the vote, not repaired (copied as it is)")
    record = {"settings": _settings(setup, options), "inputs": inputs, "multiview": voted is not None,
              "cameras": cameras}
    return record, voted


def _why(result, i: int, voters: int) -> str:
    """What a repair of camera ``i`` does, and on what evidence (``""`` when it is not flagged)."""
    flags = result.flags[i]
    if not flags:
        return ""
    parts = []
    if "misaligned" in flags:
        parts.append(f"shift by ({int(result.shift[i][0])}, {int(result.shift[i][1])}) working px")
    if "extra" in flags:
        parts.append("remove the parts no other camera that sees them supports")
    if "empty" in flags or "missing" in flags:
        fill = int(result.fill[i].sum())
        parts.append(f"add {fill} working px that {voters} other cameras see, agree on and need" if fill else
                     "add nothing: no pixel has strong evidence from the others")
    return "repair: " + "; ".join(parts)


def _repair(setup: _Setup, options: CheckOptions, frame: str, record: dict, voted) -> tuple[int, int]:
    """Write the frame's masks to ``repair_dir``: flagged ones repaired from the consensus, others copied."""
    repaired = copied = 0
    names = voted[0] if voted else []
    for name, path in setup.paths[frame].items():
        out = setup.layout.root / options.repair_dir / name / path.name
        flags = record["cameras"][name].get("flags", [])
        if not flags or "garbage" in flags:
            atomic_write(out, path.read_bytes())
            copied += 1
            continue
        i = names.index(name)
        height, width = setup.sizes[name]
        work = (math.ceil(height / setup.factors[name]), math.ceil(width / setup.factors[name]))
        # the band of what may stay: the consensus and what too few others see (never judged, never removed)
        support, fill = (cv2.resize(c[i, :work[0], :work[1]].cpu().numpy().astype(np.uint8), (width, height),
                                    interpolation=cv2.INTER_NEAREST) > 0
                         for c in (voted[1].consensus | voted[1].unknown, voted[1].fill))
        mask = read_gray(path)
        if mask.max() == 1:  # a 0/1 label mask
            mask = mask * 255
        camera = record["cameras"][name]
        fixed = repair_mask(mask, support, flags, (camera["shift_y"], camera["shift_x"]),
                            CheckParams().tolerance * setup.factors[name], fill, options.threshold)
        write_image(out, fixed, quality=options.quality)
        repaired += 1
    return repaired, copied


def _result_path(root: Path, options: CheckOptions, frame: str) -> Path:
    return root / "check" / options.masks_dir / f"{frame}.json"


def _current(setup: _Setup, options: CheckOptions, frame: str) -> bool:
    """The frame's stored result was produced by these settings from these very inputs (sizes, times)."""
    path = _result_path(setup.layout.root, options, frame)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (record.get("settings") == _settings(setup, options) and record.get("inputs") == _inputs(setup, frame)
            and set(record.get("cameras", {})) == set(setup.paths[frame]))


def _done(setup: _Setup, options: CheckOptions, frame: str) -> bool:
    """The frame has a current result (:func:`_current`) and, when asked, its repaired masks."""
    if options.overwrite or not _current(setup, options, frame):
        return False
    if options.repair_dir:
        root = setup.layout.root / options.repair_dir
        return all((root / name / p.name).is_file() for name, p in setup.paths[frame].items())
    return True


def run_check(root: str | Path, options: CheckOptions, tool: str = "evc-check") -> tuple[DatasetLayout, CheckReport]:
    """Check every mask of ``root/<masks_dir>`` (the frames of ``options.shard``); write per-frame results,
    repairs when asked, and the CSV (and picture) once every frame is done. Returns the layout of the
    mask folders it found, and the report.

    Raises:
        EvcError: bad calibration, masks of a wrong size, unreadable masks, unwritable outputs.
    """
    from ..inference import pick_device

    start = time.perf_counter()
    root = Path(root)
    check_overlap(root, {"--repair_dir": options.repair_dir}, {"--masks_dir": options.masks_dir})
    device = pick_device(options.device)
    setup, notices = _setup(root, options, tool)
    votes: dict = {}
    setup, more = _agreement(setup, options, device, root, votes)
    notices += more
    for line in notices:
        print(f"{tool}: {line}", file=sys.stderr)
    report = CheckReport(frames_total=len(setup.frames), calibrated=setup.calibration is not None, notices=notices)
    counts = {frame: len(cams) for frame, cams in setup.paths.items()}
    report.frames_fewer_cameras = sum(count < len(setup.layout.cameras) for count in counts.values())
    if setup.calibration is not None:
        report.frames_too_few_views = sum(sum(name in setup.calibration.names for name in cams) < MIN_VIEWS
                                          for cams in setup.paths.values())
    frames = setup.frames if options.shard is None else setup.frames[options.shard[0]::options.shard[1]]
    todo = [frame for frame in frames if not _done(setup, options, frame)]
    report.frames_resumed = len(frames) - len(todo)
    # a killed run's temporary files, of this run's frames only: another shard may be writing its own right now
    clear_stale_temp_files(root / "check" / options.masks_dir, [f"{frame}.json" for frame in frames])
    if options.repair_dir:
        for camera in setup.layout.cameras:
            clear_stale_temp_files(root / options.repair_dir / camera.name,
                                   [setup.paths[f][camera.name].name for f in frames if camera.name in setup.paths[f]])

    def work(frame: str) -> tuple[int, int, int]:
        """Check one frame, repair it when asked, store its result; frames run in ``workers`` threads."""
        if frame in votes:  # voted already by the sampling, with the same cameras
            inputs, masks, voted = votes.pop(frame)
        else:
            inputs = _inputs(setup, frame)  # before reading: a mask rewritten meanwhile makes the result stale
            masks, voted = _frame_masks(setup, options, frame), False
        record, voted = _frame_result(setup, options, frame, masks, device, inputs, voted)
        repaired, copied = _repair(setup, options, frame, record, voted) if options.repair_dir else (0, 0)
        atomic_write(_result_path(root, options, frame), json.dumps(record).encode())
        return len(masks), repaired, copied

    try:
        with _one_thread_per_vote(device), progress_bar(len(frames), tool) as bar:
            bar.update(report.frames_resumed)  # frames: an interruption says how many are done
            for count, repaired, copied in prefetch_map(work, todo, options.workers, options.workers):
                report.repaired += repaired
                report.copied += copied
                report.frames_checked += 1
                report.masks_checked += count
                bar.update(1)
    except KeyboardInterrupt:  # the frames in flight finished meanwhile: count what is written
        set_progress(sum(_current(setup, options, frame) for frame in frames))
        raise
    if all(_current(setup, options, frame) for frame in setup.frames):
        report.rows = _rows(setup, options)
        report.csv = root / "check" / f"{options.masks_dir}.csv"
        if options.only:  # a run over some cameras: the other cameras' rows of the last report stay
            kept = _other_rows(report.csv, {camera.name for camera in setup.layout.cameras} | set(options.only))
            report.rows_kept = len(kept)
            report.rows = sorted(report.rows + kept, key=lambda r: (natural_key(r["camera"]), natural_key(r["frame"])))
        atomic_write(report.csv, _csv(report.rows))
        if options.preview:
            from ..check_picture import write_check_picture

            report.preview = write_check_picture(root, options.masks_dir, report.rows, setup.frames,
                                                 [c.name for c in setup.layout.cameras],
                                                 lambda frame: _overlays(setup, options, frame, device))
    report.seconds = time.perf_counter() - start
    return setup.layout, report


def _overlays(setup: _Setup, options: CheckOptions, frame: str, device) -> dict[str, tuple[np.ndarray, ...]]:
    """Per camera of ``frame``: ``(working mask, consensus, fill)`` bool arrays (empty without a vote)."""
    masks = _frame_masks(setup, options, frame)
    voted = _vote(setup, masks, device)
    out = {name: (mask, np.zeros_like(mask), np.zeros_like(mask)) for name, mask in masks.items()}
    if voted:
        for i, name in enumerate(voted[0]):
            h, w = masks[name].shape
            out[name] = (masks[name], voted[1].consensus[i, :h, :w].cpu().numpy(),
                         voted[1].fill[i, :h, :w].cpu().numpy())
    return out


def _rows(setup: _Setup, options: CheckOptions) -> list[dict]:
    """One row per (camera, frame): the stored numbers plus the temporal check, the final flag first-wins."""
    records = {frame: json.loads(_result_path(setup.layout.root, options, frame).read_text())
               for frame in setup.frames}
    rows = []
    nothing = not any(numbers["area"] for record in records.values() for numbers in record["cameras"].values())
    for camera in setup.layout.cameras:
        frames = [f for f in setup.frames if camera.name in records[f]["cameras"]]
        areas = np.array([records[f]["cameras"][camera.name]["area"] for f in frames])
        trusted = np.array([areas[t] > 0 and not records[f]["cameras"][camera.name].get("flags")
                            for t, f in enumerate(frames)])
        # every mask of the camera all zero, while the others' masks are too, or while they see the person in its view
        silent = len(frames) > 1 and not areas.any() and (nothing or any(
            records[f]["cameras"][camera.name].get("flags") for f in frames))
        for t, frame in enumerate(frames):
            numbers = records[frame]["cameras"][camera.name]
            near = [i for i in (t - 2, t - 1, t + 1, t + 2) if 0 <= i < len(frames) and trusted[i]]
            neighbours = areas[near]
            reference = float(np.median(neighbours)) if len(neighbours) else 0.0
            ratio = areas[t] / reference if reference > 0 else 1.0  # no trusted neighbour: no temporal verdict
            flags = list(numbers.get("flags", []))
            if "consensus_area" not in numbers and reference > 0 and areas[t] <= CheckParams().empty * reference:
                flags.append("empty")  # no vote: the neighbours in time are the reference
            # a multi-view verdict outweighs the area of the neighbours (a person walking out of a view shrinks)
            if "consensus_area" not in numbers and (ratio > TEMPORAL_RATIO or ratio < 1 / TEMPORAL_RATIO):
                flags.append("temporal")
            why = numbers.get("why", "")
            if silent:
                flags.insert(0, "garbage")
                why = "garbage (all zero in every frame of this camera): not repaired"
            elif flags and not why:
                why = "no multi-view evidence (temporal check only): not repaired"
            flag = next((word for word in FLAGS if word in flags), "")
            rows.append({"camera": camera.name, "frame": frame, "flag": flag, "why": why,
                         "score": numbers.get("score", min(ratio, 1 / ratio) if ratio > 0 else 0.0),
                         "area": areas[t], "temporal_ratio": ratio,
                         **{k: numbers.get(k, "") for k in COLUMNS if k not in ("camera", "frame", "flag", "score",
                                                                               "area", "temporal_ratio", "why")}})
    return rows


def _other_rows(path: Path, cameras: set[str]) -> list[dict]:
    """The rows of the report at ``path`` (if any) of cameras not in ``cameras``."""
    try:
        with open(path, newline="") as handle:
            return [{k: v for k, v in row.items() if k in COLUMNS} for row in csv.DictReader(handle)
                    if row.get("camera") not in cameras]
    except (OSError, csv.Error):
        return []


def _csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()})
    return buffer.getvalue().encode()
