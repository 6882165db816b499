"""The multi-view mask check: each mask of a frame judged by what the OTHER calibrated cameras see, and
repaired from it.

For a frame, every point of a grid around the person is projected (with lens distortion) into every camera;
a camera counts for a point when the point falls inside its image. For camera ``j`` the others vote (a soft
visual hull without ``j``, so a mask never vouches for itself): a point is occupied when at least ``tau`` of
the other counting cameras see foreground there. Its splat into ``j``'s image is the consensus. Then:

- ``extra``: the parts of ``j``'s mask outside the consensus (grown by the tolerance), a blob or a bystander
  counted whole when a third of it sticks out;
- ``missing``: what ``j``'s mask lacks, judged by the others: a foreground cell of camera ``k`` whose every
  occupied point ``j`` carves away is lost; ``missing`` is the median over ``k`` of the share lost. A clean
  mask carves only the hull's phantom volume, which no other camera needs, so a fat consensus does not
  count against it (comparing a mask with the consensus itself would);
- ``misaligned``: the best shift of the mask onto the consensus brings back most of what it lacks;
- ``empty``: (almost) no mask where the others see the person.

The vote runs again without the worst flagged camera (and takes back left-out ones that now pass), so a
quarter of the cameras can be wrong at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .calibration import project
from .masks import level

__all__ = ["MIN_VIEWS", "MV_FLAGS", "CheckParams", "FrameCheck", "FrameGeometry", "check_frame", "repair_mask",
           "unsupported"]

MV_FLAGS = ("empty", "misaligned", "extra", "missing")  # in the order of precedence
MIN_VIEWS = 5  # cameras a vote needs: with fewer, one wrong mask among the others outweighs the right ones


@dataclass(frozen=True)
class CheckParams:
    """Thresholds of the vote and of the decision (fractions unless said otherwise)."""

    tau: float = 0.6  # share of the other cameras that must see a point as foreground (2 wrong of 6 tolerated)
    tau_fill: float = 1.0  # the same for what a repair fills in (the trusted cameras unanimous: a tighter hull)
    seen_share: float = 0.4  # a point counts when at least this share of the other voters see it (at least 2)
    coarse: int = 20  # coarse grid points per axis (finds the person's box)
    max_voxels: int = 80_000  # fine grid size cap
    voxel_px: float = 1.5  # fine grid spacing, in working pixels at the person's distance
    tolerance: int = 2  # pixels of the working masks a boundary may be off without counting
    empty: float = 0.05  # mask area below this share of the consensus area
    misaligned_gain: float = 0.02  # IoU with the consensus gained by the best shift ...
    misaligned_shift: float = 0.03  # ... of at least this share of the width ...
    misaligned_fault: float = 0.25  # ... and ``missing`` at least this share of its threshold ...
    misaligned_fix: float = 0.5  # ... of which the shift brings back this share
    extra: float = 0.04  # unsupported mask area, as a share of the mask's area
    missing: float = 0.08  # share of the other cameras' foreground the mask leaves unexplained (median)
    min_area: int = 12  # working pixels: a smaller consensus means the person is not in view
    rounds: int = 4  # votes per frame at most (each after leaving out the worst flagged camera)


@dataclass(frozen=True)
class FrameGeometry:
    """The cameras of one frame, scaled to the working masks: tensors on the vote's device."""

    K: torch.Tensor  # (N, 3, 3) for working-mask pixels
    R: torch.Tensor
    T: torch.Tensor
    D: torch.Tensor
    sizes: torch.Tensor  # (N, 2) working (height, width), int64
    max_radius2: torch.Tensor  # (N,)
    box: torch.Tensor  # (2, 3) world box that holds the person

    @classmethod
    def build(cls, K, R, T, D, sizes, max_radius2, box, device) -> FrameGeometry:
        """From numpy arrays (float64) onto ``device`` as float32."""
        def t(a, dtype=torch.float32):
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)
        return cls(t(K), t(R), t(T), t(D), t(sizes, torch.int64), t(max_radius2), t(box))


@dataclass
class FrameCheck:
    """The result for one frame: per camera numbers (numpy ``(N,)``), flags, and the consensus masks."""

    area: np.ndarray  # mask pixels
    consensus_area: np.ndarray  # the consensus grown by the tolerance: under ``min_area``, not in view
    extra: np.ndarray  # unsupported mask area / mask area
    missing: np.ndarray  # median share of the other cameras' foreground the mask leaves unexplained
    iou: np.ndarray  # with the consensus (a visual hull: a clean mask's is well below 1)
    shift: np.ndarray  # (N, 2) best (dy, dx) in working pixels
    shift_gain: np.ndarray  # IoU at the best shift minus IoU in place
    shift_fix: np.ndarray  # share of ``missing`` that shift brings back
    score: np.ndarray  # agreement: 1 - (the larger of extra and missing, in thresholds) / 2, at least 0
    flags: list[list[str]]  # every multi-view fault that applies, in precedence order
    voters: np.ndarray  # (N,) bool: voted in the last round
    consensus: torch.Tensor  # (N, Hm, Wm) bool: the other cameras' consensus
    fill: torch.Tensor  # (N, Hm, Wm) bool: the part of the consensus the other cameras need and the mask lacks
    unknown: torch.Tensor  # (N, Hm, Wm) bool: pixels whose points too few other cameras see: never judged there


def _grid(box: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """``(P, 3)`` points at the centres of a ``counts`` grid over ``box``."""
    axes = [box[0, i] + (torch.arange(n, device=box.device, dtype=box.dtype) + 0.5) * (box[1, i] - box[0, i]) / n
            for i, n in enumerate(counts)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _sample(masks: torch.Tensor, geometry: FrameGeometry, points: torch.Tensor):
    """``(fg, seen, index)``: each camera's mask at each point (nearest pixel), whether the point is inside
    its image, and the flat pixel index (0 where unseen); all ``(N, P)``."""
    u, v, ok = project(points, geometry.K, geometry.R, geometry.T, geometry.D, geometry.max_radius2)
    col, row = torch.floor(u), torch.floor(v)
    height, width = geometry.sizes[:, 0, None], geometry.sizes[:, 1, None]
    seen = ok & (col >= 0) & (row >= 0) & (col < width) & (row < height)
    index = torch.where(seen, row * masks.shape[2] + col, torch.zeros_like(col)).long()
    fg = masks.reshape(len(masks), -1).gather(1, index) & seen
    return fg, seen, index


def _vote(fg: torch.Tensor, seen: torch.Tensor, weights: torch.Tensor, tau: float, loo: bool = True,
          seen_share: float = CheckParams.seen_share, known: bool = False):
    """``(N, P)`` occupancy for each camera from the OTHER cameras (``loo``; whether or not the camera itself sees
    the point), or ``(P,)`` from all; a point must be seen by at least ``seen_share`` of the other voting cameras
    (at least 2). With ``known``, also ``(N, P)``: the points enough other voters see to have a say at all (the
    rest is unknown to them, never evidence of background)."""
    w = weights[:, None]
    seen_w = seen * w
    fg_w = fg * w
    support, counted = fg_w.sum(0), seen_w.sum(0)
    voters = (seen & (w > 0)).sum(0)
    total = int((weights > 0).sum())
    if not loo:
        need = max(2, math.ceil(0.5 * total))
        return (support >= tau * counted - 1e-6) & (voters >= need) & (counted > 0)
    need = max(2, math.ceil(seen_share * (total - 1)))
    support, counted = support - fg_w, counted - seen_w
    voters = voters - (seen & (w > 0)).long()
    enough = (voters >= need) & (counted > 0)
    occupied = (support >= tau * counted - 1e-6) & enough
    return (occupied, enough) if known else occupied


def _dilate(x: torch.Tensor, r: int) -> torch.Tensor:
    """``x`` ``(N, H, W)`` bool grown by a ``(2r + 1)`` square: OpenCV's on the CPU (its cost does not grow with
    ``r``; the person box grows masks by tens of pixels), a separable max filter elsewhere."""
    if r <= 0:
        return x
    if x.device.type == "cpu":
        import cv2

        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        grown = [cv2.dilate(image, kernel) for image in x.numpy().astype(np.uint8)]
        return torch.from_numpy(np.stack(grown) > 0) if grown else x
    grown = F.max_pool2d(x[:, None].float(), (1, 2 * r + 1), 1, (0, r))
    return F.max_pool2d(grown, (2 * r + 1, 1), 1, (r, 0))[:, 0] > 0.5


def _erode(x: torch.Tensor, r: int) -> torch.Tensor:
    return ~_dilate(~x, r) if r > 0 else x


def _person_box(masks: torch.Tensor, geometry: FrameGeometry, weights: torch.Tensor, params: CheckParams):
    """The box of the person: two coarse votes (the second in the first's box), each over masks grown by a
    cell's footprint so that thin parts are not missed; ``None`` when nothing is occupied."""
    box = geometry.box
    for _ in range(2):
        points = _grid(box, [params.coarse] * 3)
        cell = (box[1] - box[0]) / params.coarse
        depth = (torch.einsum("nij,j->ni", geometry.R, box.mean(0)) + geometry.T)[:, 2].abs().clamp_min(1e-3)
        footprint = float(torch.median(geometry.K[:, 0, 0].abs() * cell.max() / depth))
        fg, seen, _ = _sample(_dilate(masks, min(64, math.ceil(footprint))), geometry, points)
        occupied = _vote(fg, seen, weights, 0.7, loo=False)
        if not occupied.any():
            return None
        inside = points[occupied]
        box = torch.stack([torch.maximum(inside.min(0).values - cell, box[0]),
                           torch.minimum(inside.max(0).values + cell, box[1])])
    return box


def _fine_grid(box: torch.Tensor, geometry: FrameGeometry, params: CheckParams) -> tuple[torch.Tensor, list[int]]:
    """Grid points over ``box`` spaced about a working pixel apart where the cameras see the box's centre, and
    per camera the radius (pixels) that closes the gaps between splatted neighbouring points."""
    centre = box.mean(0)
    depth = (torch.einsum("nij,j->ni", geometry.R, centre) + geometry.T)[:, 2].clamp_min(1e-3)
    focal = geometry.K[:, 0, 0].abs().clamp_min(1e-6)
    spacing = float(torch.median(depth / focal)) * params.voxel_px
    extent = (box[1] - box[0]).clamp_min(spacing)
    count = float(torch.prod(extent / spacing))
    if count > params.max_voxels:
        spacing *= (count / params.max_voxels) ** (1 / 3)
    counts = [max(2, math.ceil(float(e) / spacing)) for e in extent]
    step = float(((box[1] - box[0]) / torch.tensor(counts, device=box.device, dtype=box.dtype)).max())
    footprint = focal * step / depth  # pixels between neighbouring points in each camera
    return _grid(box, counts), [max(1, math.ceil(0.5 * float(f))) for f in footprint]


def _best_shift(masks: torch.Tensor, consensus: torch.Tensor):
    """Per camera: ``(shift (N, 2) (dy, dx), intersection at that shift)`` maximising the overlap of the shifted
    mask with the consensus (FFT cross-correlation over zero-padded images)."""
    n, height, width = masks.shape
    size = (2 * height, 2 * width)
    a = torch.fft.rfft2(masks.float(), s=size)
    b = torch.fft.rfft2(consensus.float(), s=size)
    correlation = torch.fft.irfft2(b * a.conj(), s=size).reshape(n, -1)
    best, index = correlation.max(1)
    dy, dx = index // size[1], index % size[1]
    dy = torch.where(dy >= height, dy - size[0], dy)
    dx = torch.where(dx >= width, dx - size[1], dx)
    return torch.stack([dy, dx], 1), best.round()


def unsupported(mask: np.ndarray, band: np.ndarray, share: float = 1 / 3) -> np.ndarray:
    """``(H, W)`` bool: the pixels of ``mask`` (bool) that no other camera supports: those outside ``band`` (the
    consensus, grown by the tolerance), and every part (connected component) of the mask of which at least
    ``share`` lies outside it, whole (a blob or a bystander that a fat consensus half covers)."""
    import cv2

    outside = mask & ~band
    if not outside.any():
        return outside
    # parts a pixel or two apart (a head above its body, a limb beside it) count as one part
    count, labels = cv2.connectedComponents(cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)))
    labels[~mask] = 0
    sizes = np.bincount(labels.ravel(), minlength=count)
    out_sizes = np.bincount(labels[outside], minlength=count)
    stray = out_sizes >= share * np.maximum(sizes, 1)
    stray[0] = False
    return outside | stray[labels]


def _measure(masks: torch.Tensor, consensus: torch.Tensor, params: CheckParams,
             unknown: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The numbers of each camera against its consensus that need no other vote (``extra``, overlap, shift);
    ``unknown`` pixels (too few other cameras see them) never count as unsupported."""
    band = _dilate(consensus, params.tolerance)
    support = band if unknown is None else band | unknown
    area = masks.sum((1, 2)).float()
    c_area = consensus.sum((1, 2)).float()
    inter = (masks & consensus).sum((1, 2)).float()
    cpu_masks, cpu_band = masks.cpu().numpy(), support.cpu().numpy()
    outside = np.array([unsupported(m, b).sum() for m, b in zip(cpu_masks, cpu_band, strict=True)], np.float64)
    iou = inter / (area + c_area - inter).clamp_min(1)
    shift, best = _best_shift(masks, consensus)
    shifted_iou = best / (area + c_area - best).clamp_min(1)
    area = area.cpu().numpy()
    return {"area": area, "consensus_area": band.sum((1, 2)).cpu().numpy().astype(np.float64),
            "extra": outside / np.maximum(area, 1), "iou": iou.cpu().numpy(), "shift": shift.cpu().numpy(),
            "shift_gain": (shifted_iou - iou).cpu().numpy()}


def _flags(m: dict[str, np.ndarray], widths: np.ndarray, params: CheckParams) -> list[list[str]]:
    flags = []
    for j in range(len(widths)):
        found = []
        if m["consensus_area"][j] >= params.min_area:
            if m["area"][j] <= params.empty * m["consensus_area"][j]:
                if m["missing"][j] >= params.missing:  # and the others lose what they see: not a view it leaves
                    found.append("empty")
            else:
                if m["shift_fix"][j] >= params.misaligned_fix:
                    found.append("misaligned")
                if m["extra"][j] >= params.extra:
                    found.append("extra")
                if m["missing"][j] >= params.missing:
                    found.append("missing")
        elif m["area"][j] >= params.min_area and m["extra"][j] >= params.extra:
            found.append("extra")  # the others, who see there, agree the person is not in this view
        flags.append(found)
    return flags


def _shifted(mask: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``mask`` ``(H, W)`` moved by ``(dy, dx)`` pixels, zeros where it comes from outside."""
    height, width = mask.shape
    out = torch.zeros_like(mask)
    out[max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)] = \
        mask[max(0, -dy):height + min(0, -dy), max(0, -dx):width + min(0, -dx)]
    return out


def _shift_fix(masks, measured, foreground, cells, occupied, tight, seen, index, judges, widths,
               params) -> np.ndarray:
    """Per camera: the share of its ``missing`` that its best shift brings back (a displaced mask lacks what the
    others need on one side; a blob or a bystander beside a right mask lacks nothing); computed where the shift is
    long enough, gains overlap with the consensus and ``missing`` is at least ``misaligned_fault`` of its threshold,
    0 elsewhere."""
    fix = np.zeros(len(masks))
    candidates = [j for j in range(len(masks))
                  if measured["shift_gain"][j] >= params.misaligned_gain
                  and measured["missing"][j] >= params.misaligned_fault * params.missing
                  and np.hypot(*measured["shift"][j]) >= max(2.0, params.misaligned_shift * widths[j])]
    if not candidates:
        return fix
    moved = masks.clone()
    for j in candidates:
        moved[j] = _shifted(masks[j], *(int(v) for v in measured["shift"][j]))
    grown = _dilate(moved, params.tolerance).reshape(len(masks), -1).gather(1, index) & seen
    # each candidate carves with its moved mask; the judges' foreground stays their own masks as read
    lost, _ = _lost(foreground, cells, occupied, occupied & seen & ~grown, seen, judges, tight, candidates)
    for j in candidates:
        fix[j] = 1 - float(lost[j]) / measured["missing"][j]
    return fix


def _badness(m: dict[str, np.ndarray], flags: list[list[str]], params: CheckParams) -> np.ndarray:
    """How far past its thresholds each flagged camera is (0 for a camera without flags)."""
    worst = np.maximum(m["extra"] / params.extra, m["missing"] / params.missing)
    return np.where([bool(f) for f in flags], np.maximum(worst, 1.0), 0.0)


def _cells(index: torch.Tensor, shape: tuple[int, int], cell: list[int]) -> tuple[torch.Tensor, int]:
    """``(N, P)``: the flat index of the ``cell[k]``-pixel square each pixel ``index`` of camera ``k`` lies in, and
    the number of cells of the finest grid (an upper bound on every camera's)."""
    height, width = shape
    size = torch.tensor(cell, device=index.device)[:, None]
    columns = -(-width // min(cell))
    return (index // width // size) * columns + (index % width) // size, columns * -(-height // min(cell))


def _foreground_cells(masks: torch.Tensor, cells: list[int], count: int) -> torch.Tensor:
    """``(N, C)`` bool: the ``cells[k]``-pixel squares of camera ``k`` that lie mostly inside its own mask."""
    n, height, width = masks.shape
    pixel_cells, _ = _cells(torch.arange(height * width, device=masks.device).expand(n, -1), (height, width), cells)
    area = torch.zeros(n, count, device=masks.device)
    fg_cells = torch.zeros(n, count, device=masks.device)
    area.scatter_add_(1, pixel_cells, torch.ones_like(pixel_cells, dtype=torch.float32))
    fg_cells.scatter_add_(1, pixel_cells, masks.reshape(n, -1).float())
    return fg_cells >= 0.5 * area.clamp_min(1)


def _lost(foreground: torch.Tensor, cells: torch.Tensor, occupied: torch.Tensor, carved: torch.Tensor,
          seen: torch.Tensor, judges: torch.Tensor, tight: torch.Tensor,
          cameras: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each camera ``j``: the share of the OTHER cameras' foreground that ``j``'s mask leaves unexplained
    ``(N,)`` (the median over the ``judges``, so that a wrong one cannot decide), and the carved points the
    judges need ``(N, P)`` (what ``j``'s mask lacks, in 3D); only for ``cameras`` (default: all; 0 for the rest).

    ``foreground`` is :func:`_foreground_cells` of the masks as read, ``cells`` the cell of each point in each
    camera (:func:`_cells`). ``occupied[j]`` is the consensus of the others for ``j`` (points), ``carved[j]`` the
    part of it ``j``'s mask says is background. A foreground cell of camera ``k`` (several points deep) that
    ``occupied[j]`` explains but ``occupied[j] & ~carved[j]`` does not has lost every point of its rays to ``j``: a
    body part ``j`` lacks. A clean mask carves only what no other camera needs (the hull's phantom volume)."""
    n, count = foreground.shape
    lost = torch.zeros(n, device=foreground.device)
    needed = torch.zeros_like(carved)
    for j in range(n) if cameras is None else cameras:
        # the points j does not see are unknown to j, not background: those the others agree on tightly are kept
        keep = occupied[j] & ~carved[j] & (seen[j] | tight[j])
        hit = torch.zeros(n, count, device=foreground.device).scatter_reduce_(
            1, cells, (occupied[j] & seen[j] & seen).float(), "amax")
        kept = torch.zeros(n, count, device=foreground.device).scatter_reduce_(1, cells, (keep & seen).float(),
                                                                               "amax")
        explained = (hit > 0.5) & foreground
        lacking = explained & (kept < 0.5)
        share = lacking.sum(1) / explained.sum(1).clamp_min(1)
        voting = judges.clone()
        voting[j] = False
        voting &= explained.any(1)
        if voting.any():
            lost[j] = share[voting].median()
            lacking &= voting[:, None]
            needed[j] = carved[j] & (lacking.gather(1, cells) & seen).any(0)
    return lost, needed


def check_frame(masks: torch.Tensor, geometry: FrameGeometry, params: CheckParams = CheckParams()) -> FrameCheck:
    """Check the masks of one frame against each other.

    Args:
        masks: ``(N, Hm, Wm)`` bool on the vote's device: each camera's binarised working mask, top-left
            aligned, ``geometry.sizes`` giving the part that is image.
        geometry: the cameras, scaled to the working masks.
        params: thresholds.

    Returns:
        A :class:`FrameCheck`; a frame whose person no vote finds gets empty consensus masks.
    """
    n = len(masks)
    nonempty = masks.reshape(n, -1).sum(1) >= params.min_area
    box = _person_box(masks, geometry, nonempty.float(), params)
    widths = geometry.sizes[:, 1].cpu().numpy()
    if box is None:
        consensus = torch.zeros_like(masks)
        measured = _measure(masks, consensus, params)
        measured.update(missing=np.zeros(n), shift_fix=np.zeros(n))
        flags = _flags(measured, widths, params)
        return FrameCheck(**measured, score=_score(measured, flags, params), flags=flags,
                          voters=nonempty.cpu().numpy(), consensus=consensus, fill=consensus, unknown=consensus)
    points, radii = _fine_grid(box, geometry, params)
    fg, seen, index = _sample(masks, geometry, points)
    # every vote and carving uses the masks grown by the tolerance: a boundary a few pixels in (an eroded or soft
    # mask) neither carves the others' limbs away nor counts against the mask itself
    grown = _dilate(masks, params.tolerance).reshape(n, -1).gather(1, index) & seen
    cell = [max(2, 2 * r) for r in radii]  # the squares ``missing`` counts in: several points deep
    cells, count = _cells(index, masks.shape[1:], cell)
    foreground = _foreground_cells(masks, cell, count)
    # what too few of the others see is unknown to them: pixels of a camera whose every point is such are not judged
    _, known = _vote(grown, seen, nonempty.float(), params.tau, known=True)
    unknown = _splat(seen & ~known, index, masks.shape, radii) & ~_splat(seen & known, index, masks.shape, radii)
    excluded = torch.zeros(n, dtype=torch.bool, device=masks.device)
    for round_ in range(params.rounds):
        weights = (nonempty & ~excluded).float()
        occupied = _vote(grown, seen, weights, params.tau)
        consensus = _splat(occupied & seen, index, masks.shape, radii)
        measured = _measure(masks, consensus, params, unknown)
        tight = _vote(fg, seen, weights, params.tau_fill)  # the others' own masks unanimous
        lost, needed = _lost(foreground, cells, occupied, occupied & seen & ~grown, seen, weights > 0, tight)
        measured["missing"] = lost.cpu().numpy()
        measured["shift_fix"] = _shift_fix(masks, measured, foreground, cells, occupied, tight, seen, index,
                                           weights > 0, widths, params)
        flags = _flags(measured, widths, params)
        # the next vote leaves out the worst flagged voter (a wrong camera pushes the clean ones' numbers up too,
        # less) and takes back the left-out cameras that now pass; at most a third of the cameras are left out
        badness = _badness(measured, flags, params) * (weights > 0).cpu().numpy()
        before = excluded.clone()
        excluded &= torch.tensor([bool(f) for f in flags], device=masks.device)
        if badness.any() and int(excluded.sum()) < n // 3:
            excluded[int(badness.argmax())] = True
        if torch.equal(excluded, before) or round_ == params.rounds - 1:
            break
    # what a repair fills in: the needed points the voters' own masks (not grown) agree on unanimously (a tighter
    # hull), or all of them where a wrong camera still voting leaves that hull without them
    tight = needed & tight
    tight = torch.where(tight.any(1, keepdim=True), tight, needed)
    return FrameCheck(**measured, score=_score(measured, flags, params), flags=flags,
                      voters=(weights > 0).cpu().numpy(), consensus=consensus,
                      fill=_splat(tight, index, masks.shape, radii) & ~unknown, unknown=unknown)


def _score(m: dict[str, np.ndarray], flags: list[list[str]], params: CheckParams) -> np.ndarray:
    """Agreement in [0, 1]: 1 when perfect, 0.5 at a threshold, 0 at twice a threshold or empty."""
    worst = np.maximum(m["extra"] / params.extra, m["missing"] / params.missing)
    return np.where(["empty" in f for f in flags], 0.0, np.clip(1 - worst / 2, 0, 1))


def _splat(occupied: torch.Tensor, index: torch.Tensor, shape: torch.Size, radii: list[int]) -> torch.Tensor:
    """``(N, Hm, Wm)`` bool: the pixels of each camera's occupied voxels, the gaps between neighbouring voxels
    closed (``radii``: each camera's closing radius, from the voxel spacing there)."""
    flat = torch.zeros(shape[0], shape[1] * shape[2], device=index.device)
    flat.scatter_reduce_(1, index, occupied.float(), "amax")
    splat = flat.reshape(shape) > 0.5
    out = torch.empty_like(splat)
    for r in sorted(set(radii)):
        cameras = [j for j, rj in enumerate(radii) if rj == r]
        out[cameras] = _erode(_dilate(splat[cameras], r), r)
    return out


def repair_mask(mask: np.ndarray, consensus: np.ndarray, flags: list[str], shift: tuple[float, float],
                tolerance: float, fill: np.ndarray | None = None, threshold: float = 0.5) -> np.ndarray:
    """A repaired full-size mask (all in the mask's own pixels).

    Args:
        mask: ``(H, W)`` uint8 mask as read (soft values kept where the mask is trusted).
        consensus: ``(H, W)`` bool, the other cameras' consensus at full size.
        flags: the multi-view faults found (``MV_FLAGS`` words).
        shift: ``(dy, dx)`` in full-size pixels moving the mask onto the consensus (``misaligned``).
        tolerance: full-size pixels the consensus boundary may be off.
        fill: ``(H, W)`` bool, the part of the consensus the other cameras need and the mask lacks (default:
            ``consensus``).
        threshold: foreground above this fraction of full scale: above ``round(threshold * 255)``.

    Returns:
        ``(H, W)`` uint8: ``empty`` -> ``fill``; ``misaligned`` -> the mask shifted; then ``extra`` -> what no
        other camera supports (:func:`unsupported`, against the consensus grown by ``tolerance``) cleared, with
        its soft edge; ``missing`` -> ``fill`` added.
    """
    import cv2

    fill = consensus if fill is None else fill
    out = mask.copy()
    if "empty" in flags:
        return np.where(fill, np.uint8(255), np.uint8(0))
    if "misaligned" in flags:
        dy, dx = (round(s) for s in shift)
        out = cv2.warpAffine(out, np.float32([[1, 0, dx], [0, 1, dy]]), (mask.shape[1], mask.shape[0]),
                             flags=cv2.INTER_NEAREST, borderValue=0)
    if "extra" in flags:
        size = 2 * max(1, math.ceil(tolerance)) + 1
        band = cv2.dilate(consensus.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        foreground = out > level(threshold)
        removed = unsupported(foreground, band)
        halo = cv2.dilate(removed.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        out[removed | (halo & ~foreground)] = 0  # with the soft edge around what goes
    if "missing" in flags:
        out[fill] = 255
    return out
