"""Camera calibration of an EasyVolcap dataset: ``intri.yml`` and ``extri.yml`` at the data root.

Both are OpenCV ``FileStorage`` YAML. ``intri.yml`` holds ``names`` and per camera ``K_<name>`` (3x3),
``D_<name>`` or ``dist_<name>`` (optional; OpenCV's order k1, k2, p1, p2[, k3[, k4, k5, k6[, s1, s2, s3,
s4[, tx, ty]]]], so 4, 5, 8, 12 or 14 numbers; the tilted-sensor pair ``tx, ty`` must be 0),
``H_<name>``/``W_<name>`` (optional, 0 = unknown); ``extri.yml`` holds ``R_<name>`` (Rodrigues 3x1) or
``Rot_<name>`` (3x3; when both are given they must agree), ``T_<name>``
(3x1) and optionally ``bounds_<name>`` (2x3: min row, max row). World to camera is
``x = R @ X + T``; a pixel is ``K @ distort(x / z)`` (``cv2.projectPoints``), with the origin at the
top-left corner of the first pixel, so pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from .errors import EvcError
from .image_io import atomic_write

__all__ = ["Calibration", "distort", "field_radius2", "looking_away", "project", "read_calibration", "viewing_box",
           "write_calibration"]

INTRI, EXTRI = "intri.yml", "extri.yml"


@dataclass(frozen=True)
class Calibration:
    """The cameras of a dataset, in the files' order: ``K`` ``(N, 3, 3)``, ``R`` ``(N, 3, 3)``, ``T`` ``(N, 3)``,
    ``D`` ``(N, 5)``, ``H``/``W`` ``(N,)`` (0: unknown), all float64 but ``H``/``W`` (int64); ``bounds``
    ``(2, 3)`` world box (min, max) or ``None``."""

    names: tuple[str, ...]
    K: np.ndarray
    R: np.ndarray
    T: np.ndarray
    D: np.ndarray
    H: np.ndarray
    W: np.ndarray
    bounds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def centres(self) -> np.ndarray:
        """Camera centres in world coordinates, ``(N, 3)``: ``-R^T T``."""
        return -np.einsum("nji,nj->ni", self.R, self.T)

    def subset(self, names: list[str] | tuple[str, ...]) -> Calibration:
        """The cameras ``names`` (each must be present), in that order."""
        index = [self.names.index(name) for name in names]
        return replace(self, names=tuple(names), K=self.K[index], R=self.R[index], T=self.T[index],
                       D=self.D[index], H=self.H[index], W=self.W[index])

    def with_sizes(self, sizes: list[tuple[int, int]]) -> Calibration:
        """The same cameras with ``(height, width)`` per camera."""
        return replace(self, H=np.array([s[0] for s in sizes], np.int64), W=np.array([s[1] for s in sizes], np.int64))


def _names(storage: cv2.FileStorage, path: Path) -> list[str]:
    node = storage.getNode("names")
    if node.empty() or not node.isSeq():
        raise EvcError(f"{path}: no 'names' list of cameras")
    names = []
    for i in range(node.size()):
        item = node.at(i)
        names.append(item.string() if item.isString() else str(int(item.real())))
    if not names:
        raise EvcError(f"{path}: the 'names' list is empty")
    return names


def _matrix(storage: cv2.FileStorage, key: str, path: Path) -> np.ndarray | None:
    """The numbers under ``key``: an OpenCV matrix, a list of numbers or one number; ``None`` when absent.

    Raises:
        EvcError: the key holds something else (text, a mapping, a list of other things).
    """
    try:
        node = storage.getNode(key)
        if node.empty() or node.isNone():
            return None
        if node.isInt() or node.isReal():
            return np.array([[node.real()]], np.float64)
        if node.isSeq():
            items = [node.at(i) for i in range(node.size())]
            if all(item.isInt() or item.isReal() for item in items):
                return np.array([item.real() for item in items], np.float64)
            kind = "a list of other things than numbers"
        elif node.isMap() and not node.getNode("data").empty():
            matrix = node.mat()
            if matrix is not None:
                return np.asarray(matrix, np.float64)
            kind = "an unreadable matrix"
        else:
            kind = "text" if node.isString() else "a mapping that is not an OpenCV matrix"
    except cv2.error:
        kind = "an unreadable matrix"
    raise EvcError(f"{path}: {key} must be numbers (an OpenCV matrix or a list), got {kind}")


def _open(path: Path) -> cv2.FileStorage:
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as error:  # SystemError: OpenCV's binding wraps parse errors in it
        cause = error.__cause__ or error.__context__ or error
        lines = [line for line in str(cause).splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else "parse error"
        raise EvcError(f"{path}: not a readable OpenCV YAML file ({detail})") from None
    if not storage.isOpened():
        raise EvcError(f"{path}: not a readable OpenCV YAML file")
    return storage


def _shaped(value: np.ndarray | None, size: int, path: Path, key: str) -> np.ndarray:
    if value is None:
        raise EvcError(f"{path}: camera key {key} missing")
    if value.size != size or not np.all(np.isfinite(value)):
        got = f"{value.size} numbers" if value.size != size else "non-finite numbers"
        raise EvcError(f"{path}: {key} must hold {size} finite numbers, got {got}")
    return value.reshape(-1)


DIST_SIZES = (4, 5, 8, 12, 14)  # OpenCV's distortion models; the projection handles all but the sensor tilt


def _distortion(value: np.ndarray | None, path: Path, key: str) -> np.ndarray:
    """``(12,)`` k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4 from OpenCV's 4 ... 14 coefficients."""
    out = np.zeros(12)
    if value is None:
        return out
    flat = value.reshape(-1)
    if flat.size not in DIST_SIZES:
        raise EvcError(f"{path}: {key} must hold 4, 5, 8, 12 or 14 numbers (OpenCV's distortion models), "
                       f"got {flat.size}")
    if not np.all(np.isfinite(flat)):
        raise EvcError(f"{path}: {key} holds non-finite numbers")
    if flat.size == 14 and np.any(flat[12:] != 0):
        raise EvcError(f"{path}: {key}: the tilted-sensor terms (entries 13, 14) are not supported; they must be 0")
    out[:min(flat.size, 12)] = flat[:12]
    return out


def _check_camera(K: np.ndarray, R: np.ndarray, name: str, intri: Path, extri: Path, rot_key: str) -> None:
    """A usable camera: K invertible with positive focal lengths, R a rotation (orthonormal, det +1)."""
    if not (K[0, 0] > 0 and K[1, 1] > 0) or abs(np.linalg.det(K)) < 1e-12 or np.any(K[2] != [0, 0, 1]):
        raise EvcError(f"{intri}: K_{name} is not a camera matrix (focal lengths must be > 0, the last row 0 0 1; "
                       f"got fx={K[0, 0]:g}, fy={K[1, 1]:g}, last row {K[2].tolist()})")
    error = float(np.abs(R @ R.T - np.eye(3)).max())
    if error > 1e-3 or np.linalg.det(R) < 0:
        what = f"not orthonormal (R R^T differs from I by {error:.3g})" if error > 1e-3 else "a reflection (det -1)"
        raise EvcError(f"{extri}: {rot_key} is {what}, not a rotation")


def read_calibration(root: str | Path) -> Calibration | None:
    """The calibration at ``root`` (``intri.yml`` + ``extri.yml``), or ``None`` when neither file exists.

    Raises:
        EvcError: one of the two files is missing or unreadable, or a camera lacks ``K_``, ``R_``/``Rot_``
            or ``T_`` (the message names the file and the key).
    """
    root = Path(root)
    intri_path, extri_path = root / INTRI, root / EXTRI
    if not intri_path.exists() and not extri_path.exists():
        return None
    for path, other in ((intri_path, extri_path), (extri_path, intri_path)):
        if not path.is_file():
            raise EvcError(f"{path}: missing (found {other.name}; the multi-view check needs both)")
    intri, extri = _open(intri_path), _open(extri_path)
    try:
        names = _names(intri, intri_path)
        extri_names = set(_names(extri, extri_path))
        K, R, T, D, H, W, bounds = [], [], [], [], [], [], []
        for name in names:
            if name not in extri_names:
                raise EvcError(f"{extri_path}: camera {name!r} of {intri_path.name} is not in its 'names'")
            K.append(_shaped(_matrix(intri, f"K_{name}", intri_path), 9, intri_path, f"K_{name}").reshape(3, 3))
            dist_key = f"D_{name}" if not intri.getNode(f"D_{name}").empty() else f"dist_{name}"
            D.append(_distortion(_matrix(intri, dist_key, intri_path), intri_path, dist_key))
            H.append(_size(intri, f"H_{name}", intri_path))
            W.append(_size(intri, f"W_{name}", intri_path))
            rvec, rot = _matrix(extri, f"R_{name}", extri_path), _matrix(extri, f"Rot_{name}", extri_path)
            if rvec is not None:
                R.append(cv2.Rodrigues(_shaped(rvec, 3, extri_path, f"R_{name}").reshape(3, 1))[0])
                rot_key = f"R_{name}"
                if rot is not None:
                    matrix = _shaped(rot, 9, extri_path, f"Rot_{name}").reshape(3, 3)
                    _check_camera(K[-1], matrix, name, intri_path, extri_path, f"Rot_{name}")
                    if np.abs(matrix - R[-1]).max() > 1e-3:
                        raise EvcError(f"{extri_path}: R_{name} and Rot_{name} disagree (one was edited?); "
                                       "keep the right one only")
            elif rot is not None:
                R.append(_shaped(rot, 9, extri_path, f"Rot_{name}").reshape(3, 3))
                rot_key = f"Rot_{name}"
            else:
                raise EvcError(f"{extri_path}: camera key R_{name} (or Rot_{name}) missing")
            _check_camera(K[-1], R[-1], name, intri_path, extri_path, rot_key)
            T.append(_shaped(_matrix(extri, f"T_{name}", extri_path), 3, extri_path, f"T_{name}"))
            box = _matrix(extri, f"bounds_{name}", extri_path)
            if box is not None:
                bounds.append(_shaped(box, 6, extri_path, f"bounds_{name}").reshape(2, 3))
    finally:
        intri.release()
        extri.release()
    box = np.stack([np.min([b[0] for b in bounds], 0), np.max([b[1] for b in bounds], 0)]) if bounds else None
    D = np.stack(D)
    D = D if np.any(D[:, 5:]) else D[:, :5]  # the five-term model when no camera uses more
    return Calibration(tuple(names), np.stack(K), np.stack(R), np.stack(T), D,
                       np.array(H, np.int64), np.array(W, np.int64), box)


def _size(storage: cv2.FileStorage, key: str, path: Path) -> int:
    value = _matrix(storage, key, path)
    if value is None:
        return 0
    if value.size != 1 or not np.isfinite(value).all() or value.item() < 0:
        raise EvcError(f"{path}: {key} must be a number >= 0")
    return round(value.item())


def write_calibration(root: str | Path, calibration: Calibration) -> None:
    """Write ``intri.yml`` and ``extri.yml`` at ``root`` (atomically), as EasyVolcap's ``write_camera``:
    ``R_`` as a Rodrigues vector and ``Rot_`` as the matrix; ``bounds_`` for every camera when set."""
    root = Path(root)
    intri = cv2.FileStorage("intri.yml", cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_MEMORY)
    extri = cv2.FileStorage("extri.yml", cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_MEMORY)
    for storage in (intri, extri):
        storage.startWriteStruct("names", cv2.FileNode_SEQ)
        for name in calibration.names:
            storage.write("", name)
        storage.endWriteStruct()
    for i, name in enumerate(calibration.names):
        intri.write(f"K_{name}", calibration.K[i])
        intri.write(f"D_{name}", calibration.D[i].reshape(1, -1))
        intri.write(f"H_{name}", int(calibration.H[i]))
        intri.write(f"W_{name}", int(calibration.W[i]))
        extri.write(f"R_{name}", cv2.Rodrigues(calibration.R[i])[0])
        extri.write(f"Rot_{name}", calibration.R[i])
        extri.write(f"T_{name}", calibration.T[i].reshape(3, 1))
        if calibration.bounds is not None:
            extri.write(f"bounds_{name}", calibration.bounds)
    atomic_write(root / INTRI, intri.releaseAndGetString().encode())
    atomic_write(root / EXTRI, extri.releaseAndGetString().encode())


def distort(x, y, D):
    """OpenCV's lens distortion of normalised coordinates ``x``, ``y`` (arrays or tensors, broadcast against
    ``D[..., i]``): radial ``k1, k2, k3`` and tangential ``p1, p2`` (``D`` of 5), with the rational ``k4, k5, k6``
    and the thin prism ``s1 .. s4`` (``D`` of 12)."""
    k1, k2, p1, p2, k3 = (D[..., i] for i in range(5))
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if D.shape[-1] > 5:
        k4, k5, k6, s1, s2, s3, s4 = (D[..., i] for i in range(5, 12))
        radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) + r2 * (s1 + r2 * s2)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y + r2 * (s3 + r2 * s4)
        return xd, yd
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def project(points, K, R, T, D, max_radius2=None):
    """Project world points into cameras, as ``cv2.projectPoints``.

    Args:
        points: ``(P, 3)`` torch tensor.
        K, R, T, D: ``(N, 3, 3)``, ``(N, 3, 3)``, ``(N, 3)``, ``(N, 5)`` or ``(N, 12)`` tensors (same dtype and device).
        max_radius2: ``(N,)`` squared normalised radius beyond which a point counts as unseen (distortion
            polynomials fold back far outside the field of view); ``None``: no limit.

    Returns:
        ``(u, v, ok)``: ``(N, P)`` pixel coordinates (column, row) and bool, in front of the camera (and
        within ``max_radius2``).
    """
    px, py, pz = points[:, 0], points[:, 1], points[:, 2]

    def row(i: int):  # camera coordinate i of every point, (N, P), contiguous
        return R[:, i, 0, None] * px + R[:, i, 1, None] * py + R[:, i, 2, None] * pz + T[:, i, None]

    z = row(2)
    ok = z > 1e-6
    inv = 1 / z.where(ok, 1.0)
    x, y = row(0) * inv, row(1) * inv
    if max_radius2 is not None:
        ok &= x * x + y * y <= max_radius2[:, None]
    xd, yd = distort(x, y, D[:, None, :])
    u = K[:, 0, 0, None] * xd + K[:, 0, 1, None] * yd + K[:, 0, 2, None]
    v = K[:, 1, 1, None] * yd + K[:, 1, 2, None]
    return u, v, ok


def _corner_rays(calibration: Calibration, i: int) -> np.ndarray:
    """Normalised undistorted coordinates ``(4, 2)`` of camera ``i``'s image corners."""
    height, width = int(calibration.H[i]), int(calibration.W[i])
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)[:, None, :]
    return cv2.undistortPoints(corners, calibration.K[i], calibration.D[i])[:, 0]


def field_radius2(calibration: Calibration, margin: float = 1.3) -> np.ndarray:
    """``(N,)`` squared normalised radius of each camera's field of view (its farthest image corner),
    times ``margin**2``: beyond it a distortion polynomial may fold points back into the image."""
    return np.array([(np.square(_corner_rays(calibration, i)).sum(1).max()) * margin ** 2
                     for i in range(len(calibration))])


def viewing_box(calibration: Calibration) -> np.ndarray:
    """A ``(2, 3)`` world box that holds what the cameras look at: ``bounds`` when given, else the box of the
    camera centres and of their image corners' rays out to the cameras' typical distance from their centroid
    (EasyVolcap's ``multiview_camera_bounds`` idea). Needs ``H``/``W``."""
    if calibration.bounds is not None:
        return np.asarray(calibration.bounds, np.float64)
    centres = calibration.centres
    reach = max(float(np.median(np.linalg.norm(centres - centres.mean(0), axis=1))), 1e-3)
    points = [centres]
    for i in range(len(calibration)):
        rays = np.concatenate([_corner_rays(calibration, i), np.ones((4, 1))], 1) * reach * 1.5
        points.append(rays @ calibration.R[i] + centres[i])
    points = np.concatenate(points)
    return np.stack([points.min(0), points.max(0)])


def _nearest_point(calibration: Calibration, cameras: list[int]) -> np.ndarray:
    """The point nearest to the optical axes of ``cameras`` (least squares over the lines)."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for i in cameras:
        d = calibration.R[i][2]  # the optical axis in world coordinates
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ calibration.centres[i]
    return np.linalg.lstsq(A, b, rcond=None)[0]


def looking_away(calibration: Calibration, margin: float = 0.25) -> tuple[np.ndarray, list[int]]:
    """The rig's subject (the centre of ``bounds``, else the point nearest every optical axis, found again without
    the cameras that miss it) and the cameras that do not see it: behind them, or outside their image grown by
    ``margin`` of its size on each side (a camera turned away, a flipped or zero rotation). Needs ``H``/``W``."""
    cameras = list(range(len(calibration)))
    point = np.zeros(3)
    for _ in range(2):
        point = (np.asarray(calibration.bounds).mean(0) if calibration.bounds is not None
                 else _nearest_point(calibration, cameras or list(range(len(calibration)))))
        away = []
        for i in range(len(calibration)):
            x = calibration.R[i] @ point + calibration.T[i]
            if x[2] <= 1e-6:
                away.append(i)
                continue
            u, v = (calibration.K[i] @ (x / x[2]))[:2]  # pinhole: a distortion polynomial folds far points back
            height, width = int(calibration.H[i]), int(calibration.W[i])
            if not (-margin * width <= u <= (1 + margin) * width and -margin * height <= v <= (1 + margin) * height):
                away.append(i)
        kept = [i for i in range(len(calibration)) if i not in away]
        if kept == cameras or not kept:
            break
        cameras = kept
    return point, away
