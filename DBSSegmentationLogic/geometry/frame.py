"""Leksell frame coordinates and ring/arc angles (DESIGN §4): the one home of frame math.

Frame-aligned RAS is world RAS after the image-to-frame transform, with the frame centre at the
origin. Leksell coordinates: ``X = 100 - R``, ``Y = 100 + A``, ``Z = 100 - S``.

Ring ``r`` and arc ``a`` (degrees, each in [0, 180]; 90/90 is vertical) give the unit vector ``d`` from
target to entry. For every mounting ``d = M @ (cos a, sin a·cos r, sin a·sin r)`` with a fixed rotation
``M`` about the vertical axis, which reproduces the table of DESIGN §4:

    lateral-right       ( cos a,  sin a·cos r,  sin a·sin r)
    lateral-left        (-cos a, -sin a·cos r,  sin a·sin r)
    sagittal-anterior   (-sin a·cos r,  cos a,  sin a·sin r)
    sagittal-posterior  ( sin a·cos r, -cos a,  sin a·sin r)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.exceptions import DBSInputError
from ..io.volumes import RAS_TO_LPS
from .acpc import AcpcSpace, as_point

FRAME_CENTRE_MM = 100.0

#: Rotation from the lateral-right canonical frame to each mounting, acting on (R, A, S).
MOUNTING_ROTATIONS = {
    "lateral-right": np.eye(3),
    "lateral-left": np.diag([-1.0, -1.0, 1.0]),
    "sagittal-anterior": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
    "sagittal-posterior": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
}
MOUNTINGS = tuple(MOUNTING_ROTATIONS)

#: Tolerance on a transform's rotation part (orthonormality, determinant) and on its linearity.
RIGID_TOLERANCE = 1e-4


def leksell_from_frame_ras(points_frame_ras) -> np.ndarray:
    """Frame-aligned RAS (frame centre at the origin) to Leksell X, Y, Z mm."""
    points = np.asarray(points_frame_ras, dtype=float)
    return FRAME_CENTRE_MM + points * np.array([-1.0, 1.0, -1.0])


def frame_ras_from_leksell(leksell_xyz) -> np.ndarray:
    """Leksell X, Y, Z mm to frame-aligned RAS (frame centre at the origin)."""
    points = np.asarray(leksell_xyz, dtype=float)
    return (points - FRAME_CENTRE_MM) * np.array([-1.0, 1.0, -1.0])


def _mounting_rotation(mounting: str) -> np.ndarray:
    try:
        return MOUNTING_ROTATIONS[mounting]
    except KeyError:
        raise DBSInputError(f"unknown mounting '{mounting}': use one of {', '.join(MOUNTINGS)}") from None


def _check_angle(value_deg: float, name: str) -> float:
    value_deg = float(value_deg)
    if not math.isfinite(value_deg) or not 0.0 <= value_deg <= 180.0:
        raise DBSInputError(f"{name} angle {value_deg}° is outside [0, 180]°")
    return value_deg


def direction_from_ring_arc(ring_deg: float, arc_deg: float, mounting: str = "lateral-right") -> np.ndarray:
    """Unit vector from target to entry in frame-aligned RAS for the given frame settings."""
    ring = math.radians(_check_angle(ring_deg, "ring"))
    arc = math.radians(_check_angle(arc_deg, "arc"))
    canonical = np.array([math.cos(arc), math.sin(arc) * math.cos(ring), math.sin(arc) * math.sin(ring)])
    return _mounting_rotation(mounting) @ canonical


def ring_arc_from_direction(direction_to_entry_frame_ras, mounting: str = "lateral-right") -> tuple[float, float]:
    """(ring_deg, arc_deg) for a direction from target to entry in frame-aligned RAS.

    The entry must not lie below the target (the arc cannot reach it). When the trajectory is along
    the arc's axis (arc 0 or 180) the ring is undefined and reported as 90.
    """
    direction = as_point(direction_to_entry_frame_ras, "trajectory direction")
    length = float(np.linalg.norm(direction))
    if length < 1e-9:
        raise DBSInputError("entry and target coincide: the trajectory has no direction")
    direction = direction / length
    if direction[2] < -1e-12:
        raise DBSInputError(
            "the entry lies below the target (in frame axes): a frame trajectory must enter from above"
        )
    cos_arc, sin_arc_cos_ring, sin_arc_sin_ring = _mounting_rotation(mounting).T @ direction
    sin_arc = math.hypot(sin_arc_cos_ring, sin_arc_sin_ring)
    # atan2 rather than acos(cos_arc): accurate to the last digit near arc 0 and 180 as well.
    arc_deg = math.degrees(math.atan2(sin_arc, cos_arc))
    if sin_arc < 1e-12:
        ring_deg = 90.0
    else:
        ring_deg = math.degrees(math.atan2(max(sin_arc_sin_ring, 0.0), sin_arc_cos_ring))
    return ring_deg, arc_deg


def round_to_half(value: float) -> float:
    """Clinical rounding of frame settings to 0.5 (mm or degrees)."""
    return math.floor(value * 2.0 + 0.5) / 2.0


@dataclass(frozen=True)
class FrameSpace:
    """Rigid map from image RAS to frame-aligned RAS (frame centre at the origin)."""

    image_to_frame_ras: np.ndarray  # 4x4
    description: str

    @classmethod
    def virtual(cls, acpc: AcpcSpace) -> "FrameSpace":
        """The virtual frame: AC-PC space with the MCP at the frame centre."""
        return cls(acpc.matrix_ras_to_acpc(), "virtual frame (AC-PC aligned, MCP at the frame centre)")

    @classmethod
    def from_matrix(cls, image_to_frame_ras, description: str = "image-to-frame matrix") -> "FrameSpace":
        matrix = np.asarray(image_to_frame_ras, dtype=float)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise DBSInputError("the image-to-frame transform must be a finite 4x4 matrix")
        check_rigid(matrix[:3, :3], description)
        return cls(matrix, description)

    def to_frame_ras(self, points_ras) -> np.ndarray:
        points = np.asarray(points_ras, dtype=float)
        return points @ self.image_to_frame_ras[:3, :3].T + self.image_to_frame_ras[:3, 3]

    def to_image_ras(self, points_frame_ras) -> np.ndarray:
        points = np.asarray(points_frame_ras, dtype=float)
        return (points - self.image_to_frame_ras[:3, 3]) @ self.image_to_frame_ras[:3, :3]

    def vector_to_frame_ras(self, vectors_ras) -> np.ndarray:
        return np.asarray(vectors_ras, dtype=float) @ self.image_to_frame_ras[:3, :3].T

    def vector_to_image_ras(self, vectors_frame_ras) -> np.ndarray:
        return np.asarray(vectors_frame_ras, dtype=float) @ self.image_to_frame_ras[:3, :3]

    def leksell(self, points_ras) -> np.ndarray:
        """Leksell X, Y, Z of image-RAS point(s)."""
        return leksell_from_frame_ras(self.to_frame_ras(points_ras))

    def ras_from_leksell(self, leksell_xyz) -> np.ndarray:
        """Image-RAS point(s) of Leksell X, Y, Z."""
        return self.to_image_ras(frame_ras_from_leksell(leksell_xyz))

    def ring_arc(self, target_ras, entry_ras, mounting: str = "lateral-right") -> tuple[float, float]:
        """(ring_deg, arc_deg) of the trajectory from target to entry, both in image RAS."""
        direction = self.vector_to_frame_ras(as_point(entry_ras, "entry") - as_point(target_ras, "target"))
        return ring_arc_from_direction(direction, mounting)


def check_rigid(rotation: np.ndarray, what: str) -> None:
    """Raise unless ``rotation`` is a proper rotation (no scale, shear or mirror)."""
    singular_values = np.linalg.svd(rotation, compute_uv=False)
    if np.max(np.abs(singular_values - 1.0)) > RIGID_TOLERANCE:
        raise DBSInputError(
            f"{what} is not rigid: it scales or shears (singular values "
            f"{', '.join(f'{s:.4f}' for s in singular_values)}; all must be 1)"
        )
    if np.linalg.det(rotation) < 0:
        raise DBSInputError(f"{what} is not rigid: it mirrors the image (determinant < 0), which would swap sides")


#: How the matrix stored in a transform file is read. Slicer saves a transform node in ITK's
#: resampling convention: the file maps points of the parent (frame) space to the child (image).
TRANSFORM_FILE_CONVENTIONS = ("frame-to-image", "image-to-frame")


def read_image_to_frame_transform(path, file_maps: str = "frame-to-image") -> FrameSpace:
    """Read an ITK transform file (.tfm, .h5, .txt; LPS) as an image-to-frame :class:`FrameSpace`.

    ``file_maps="frame-to-image"`` (default) reads the file as Slicer writes a transform node whose
    "to parent" direction takes the image into the frame; ``"image-to-frame"`` takes the file's
    points-mapping as the image-to-frame map itself. The transform must be rigid: it is sampled and
    any non-linear (deformable) or non-rigid (scale, shear, mirror) part is refused.
    """
    if file_maps not in TRANSFORM_FILE_CONVENTIONS:
        raise DBSInputError(f"unknown transform convention '{file_maps}': use one of {TRANSFORM_FILE_CONVENTIONS}")
    path = Path(path)
    if not path.is_file():
        raise DBSInputError(f"transform file not found: {path}")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise DBSInputError(f"cannot read transform file {path}: {reason}") from None
    file_matrix_lps = _sample_linear_map(transform, f"transform in {path.name}")
    file_matrix_ras = _lps_matrix_to_ras(file_matrix_lps)
    image_to_frame = np.linalg.inv(file_matrix_ras) if file_maps == "frame-to-image" else file_matrix_ras
    return FrameSpace.from_matrix(image_to_frame, f"image-to-frame transform from {path.name} ({file_maps} file)")


def _sample_linear_map(transform: sitk.Transform, what: str) -> np.ndarray:
    """4x4 matrix of a transform known only as a point mapping; refuses a non-linear one."""
    basis = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]], dtype=float)
    mapped = np.array([transform.TransformPoint(tuple(p)) for p in basis])
    matrix = np.eye(4)
    matrix[:3, :3] = (mapped[1:] - mapped[0]).T / 100.0
    matrix[:3, 3] = mapped[0]
    probes = np.random.default_rng(0).uniform(-120, 120, size=(32, 3))
    probes_mapped = np.array([transform.TransformPoint(tuple(p)) for p in probes])
    predicted = probes @ matrix[:3, :3].T + matrix[:3, 3]
    deviation_mm = float(np.max(np.linalg.norm(probes_mapped - predicted, axis=1)))
    if not np.all(np.isfinite(mapped)) or deviation_mm > 1e-3:
        raise DBSInputError(f"{what} is not rigid: it deforms the space non-linearly (up to {deviation_mm:.3f} mm)")
    check_rigid(matrix[:3, :3], what)
    return matrix


def _lps_matrix_to_ras(matrix_lps: np.ndarray) -> np.ndarray:
    flip = np.eye(4)
    flip[:3, :3] = RAS_TO_LPS
    return flip @ matrix_lps @ flip


def write_image_to_frame_transform(frame: FrameSpace, path, file_maps: str = "frame-to-image") -> Path:
    """Write a :class:`FrameSpace` as an ITK affine transform file readable by Slicer and by
    :func:`read_image_to_frame_transform` with the same ``file_maps``."""
    matrix_ras = frame.image_to_frame_ras if file_maps == "image-to-frame" else np.linalg.inv(frame.image_to_frame_ras)
    matrix_lps = _lps_matrix_to_ras(matrix_ras)  # the flip is its own inverse
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in matrix_lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in matrix_lps[:3, 3]])
    sitk.WriteTransform(transform, str(path))
    return Path(path)
