"""The multi-view mask check: a soft visual-hull vote of the calibrated cameras of one frame, each mask
compared with the leave-one-out consensus of the others, and a repair from that consensus.

For a frame, every voxel of a grid around the person is projected (with lens distortion) into every
camera. A camera counts for a voxel when the voxel falls inside its image; the voxel is occupied for
camera ``j`` when at least a fraction ``tau`` of the OTHER counting cameras see foreground there, so a
mask never vouches for itself. The occupied voxels are splatted into ``j``'s image: its consensus. A
mask must stay inside the lenient consensus (``tau_lenient``: a part outside it is ``extra``) and cover
the strict one (``tau_strict``: a part of it the mask lacks is ``missing``). A second vote leaves out
the cameras the first found empty, shifted or extra (they would carve or add wrongly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .calibration import project

__all__ = ["MV_FLAGS", "CheckParams", "FrameCheck", "FrameGeometry", "check_frame", "repair_mask"]

MV_FLAGS = ("empty", "misaligned", "extra", "missing")  # in the order of precedence


@dataclass(frozen=True)
class CheckParams:
    """Thresholds of the vote and of the decision (fractions unless said otherwise)."""

    tau_lenient: float = 0.7  # the consensus a mask must stay inside (tolerates 30% wrong voters)
    tau_strict: float = 0.8  # the consensus a mask must cover (tolerates 20% wrong voters)
    tau_trusted: float = 1.0  # the same in the second vote, among the cameras the first did not flag
    trusted_seen: float = 0.6  # ... where a point must be in view of this share of them (few views carve little)
    coarse: int = 20  # coarse grid points per axis (finds the person's box)
    max_voxels: int = 80_000  # fine grid size cap
    voxel_px: float = 1.5  # fine grid spacing, in working pixels at the person's distance
    tolerance: int = 2  # pixels of the working masks a boundary may be off without counting
    empty: float = 0.05  # mask area below this share of the consensus area
    misaligned_gain: float = 0.2  # IoU gained by the best shift
    misaligned_shift: float = 0.03  # best shift of at least this share of the width
    extra: float = 0.06  # mask area outside the consensus band, as a share of the mask's area
    missing: float = 0.35  # consensus core area the mask lacks (opened), as a share of the mask's area
    min_area: int = 12  # working pixels: a smaller consensus means the person is not in view


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
    consensus_area: np.ndarray
    inside: np.ndarray  # share of the mask inside the consensus band
    cover: np.ndarray  # share of the consensus core the mask covers
    extra: np.ndarray  # mask area outside the band / mask area
    missing: np.ndarray  # consensus core the mask lacks (opened) / mask area
    iou: np.ndarray
    shift: np.ndarray  # (N, 2) best (dy, dx) in working pixels
    shift_gain: np.ndarray  # IoU at the best shift minus IoU in place
    flags: list[list[str]]  # every multi-view fault that applies, in precedence order
    voters: np.ndarray  # (N,) bool: voted in the last round
    consensus: torch.Tensor  # (N, Hm, Wm) bool: what the mask must cover
    lenient: torch.Tensor  # (N, Hm, Wm) bool: what the mask must stay inside

    @property
    def score(self) -> np.ndarray:
        """Agreement in [0, 1]: the smaller of ``inside`` and ``cover`` (1 when both are perfect)."""
        return np.minimum(self.inside, self.cover)


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
          seen_share: float = 0.4) -> torch.Tensor:
    """``(N, P)`` occupancy for each camera from the OTHER cameras (``loo``), or ``(P,)`` from all; a point must be
    seen by at least ``seen_share`` of the other voting cameras (at least 2)."""
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
    return (support >= tau * counted - 1e-6) & (voters >= need) & (counted > 0) & seen


def _dilate(x: torch.Tensor, r: int) -> torch.Tensor:
    """``x`` ``(N, H, W)`` bool grown by a ``(2r + 1)`` square (separable max filter)."""
    if r <= 0:
        return x
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


def _measure(masks: torch.Tensor, consensus: torch.Tensor, params: CheckParams,
             lenient: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The numbers of each camera against its consensus; ``extra`` counts the mask outside the ``lenient``
    consensus (a few wrong voters carve the strict one, so a correct mask may stick out of it)."""
    r = params.tolerance
    band, core = _dilate(consensus if lenient is None else lenient, r), _erode(consensus, r)
    area = masks.sum((1, 2)).float()
    c_area = consensus.sum((1, 2)).float()
    core_area = core.sum((1, 2)).float()
    inter = (masks & consensus).sum((1, 2)).float()
    outside = (masks & ~band).sum((1, 2)).float()
    lacking = core & ~_dilate(masks, r)
    lacking = _dilate(_erode(lacking, r), r).sum((1, 2)).float()  # opened: slivers of a fat hull do not count
    iou = inter / (area + c_area - inter).clamp_min(1)
    shift, best = _best_shift(masks, consensus)
    shifted_iou = best / (area + c_area - best).clamp_min(1)
    return {"area": area, "consensus_area": c_area, "inside": 1 - outside / area.clamp_min(1),
            "cover": 1 - lacking / core_area.clamp_min(1), "extra": outside / area.clamp_min(1),
            "missing": lacking / area.clamp_min(1), "iou": iou, "shift": shift,
            "shift_gain": shifted_iou - iou}


def _flags(m: dict[str, np.ndarray], widths: np.ndarray, params: CheckParams) -> list[list[str]]:
    flags = []
    for j in range(len(widths)):
        found = []
        if m["consensus_area"][j] >= params.min_area:
            if m["area"][j] <= params.empty * m["consensus_area"][j]:
                found.append("empty")
            else:
                length = float(np.hypot(*m["shift"][j]))
                if m["shift_gain"][j] >= params.misaligned_gain and length >= max(2.0, params.misaligned_shift
                                                                                  * widths[j]):
                    found.append("misaligned")
                if m["extra"][j] >= params.extra:
                    found.append("extra")
                if m["missing"][j] >= params.missing:
                    found.append("missing")
        elif m["area"][j] >= params.min_area:
            found.append("extra")  # the others agree the person is not in this view
        flags.append(found)
    return flags


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
    weights = nonempty.float()
    box = _person_box(masks, geometry, weights, params)
    consensus = torch.zeros_like(masks)
    widths = geometry.sizes[:, 1].cpu().numpy()
    if box is None:
        measured = {k: v.cpu().numpy() for k, v in _measure(masks, consensus, params).items()}
        return FrameCheck(**measured, flags=_flags(measured, widths, params), voters=nonempty.cpu().numpy(),
                          consensus=consensus, lenient=consensus)
    points, radii = _fine_grid(box, geometry, params)
    fg, seen, index = _sample(masks, geometry, points)
    grown = _dilate(masks, params.tolerance).reshape(n, -1).gather(1, index) & seen  # for the unanimous vote
    weights, strict_weights, tau_strict, strict_fg = nonempty.float(), nonempty.float(), params.tau_strict, fg
    seen_share = 0.4
    for round_ in range(2):
        lenient = _splat(_vote(fg, seen, weights, params.tau_lenient), index, masks.shape, radii)
        consensus = _splat(_vote(strict_fg, seen, strict_weights, tau_strict, seen_share=seen_share), index,
                           masks.shape, radii)
        measured = {k: v.cpu().numpy() for k, v in _measure(masks, consensus, params, lenient).items()}
        flags = _flags(measured, widths, params)
        if round_ or not any(flags):
            break
        # the second vote leaves out the cameras the first flagged: the lenient one those found empty, shifted or
        # extra (they would carve or add wrongly); the strict one every flagged camera, and the trusted rest must
        # agree (``tau_trusted``, on masks grown by the tolerance, on points most of them see), so that each of
        # them carves: few views leave a hull fat otherwise
        flagged = torch.tensor([bool(f) for f in flags], device=masks.device)
        carving = torch.tensor([bool(set(f) - {"missing"}) for f in flags], device=masks.device)
        weights = (nonempty & ~carving).float()
        strict_weights, tau_strict, strict_fg = (nonempty & ~flagged).float(), params.tau_trusted, grown
        seen_share = params.trusted_seen
    return FrameCheck(**measured, flags=flags, voters=(weights > 0).cpu().numpy(), consensus=consensus,
                      lenient=lenient)


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
                tolerance: float, lenient: np.ndarray | None = None) -> np.ndarray:
    """A repaired full-size mask from the consensus (all in the mask's own pixels).

    Args:
        mask: ``(H, W)`` uint8 mask as read (soft values kept where the mask is trusted).
        consensus: ``(H, W)`` bool, the other cameras' consensus at full size.
        flags: the multi-view faults found (``MV_FLAGS`` words).
        shift: ``(dy, dx)`` in full-size pixels moving the mask onto the consensus (``misaligned``).
        tolerance: full-size pixels the consensus boundary may be off.
        lenient: ``(H, W)`` bool, the lenient consensus the mask must stay inside (default: ``consensus``).

    Returns:
        ``(H, W)`` uint8: ``empty`` -> the consensus; ``misaligned`` -> the mask shifted; then ``extra`` ->
        the mask outside the lenient consensus (grown by ``tolerance``) cleared, and its parts that do not touch
        the (strict) consensus; ``missing`` -> the consensus added.
    """
    import cv2

    out = mask.copy()
    if "empty" in flags:
        return np.where(consensus, np.uint8(255), np.uint8(0))
    if "misaligned" in flags:
        dy, dx = (round(s) for s in shift)
        out = cv2.warpAffine(out, np.float32([[1, 0, dx], [0, 1, dy]]), (mask.shape[1], mask.shape[0]),
                             flags=cv2.INTER_NEAREST, borderValue=0)
    if "extra" in flags:
        size = 2 * max(1, math.ceil(tolerance)) + 1
        keep = consensus if lenient is None else lenient
        band = cv2.dilate(keep.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        out[~band] = 0
        _count, labels = cv2.connectedComponents((out > 0).astype(np.uint8))
        touching = np.unique(labels[cv2.dilate(consensus.astype(np.uint8), np.ones((size, size), np.uint8)) > 0])
        out[~np.isin(labels, touching) & (labels > 0)] = 0  # parts apart from the strict consensus go entirely
    if "missing" in flags:
        out[consensus] = 255
    return out
