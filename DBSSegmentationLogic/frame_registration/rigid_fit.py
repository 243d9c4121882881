"""Rigid fit of the localizer's fiducials: image RAS -> frame-aligned RAS.

Fiducials (Brown 1979, 2015; Sedrak et al. 2021):

* each slice crossing an N-localizer gives three collinear dots A (vertical 1), B (diagonal), C
  (vertical 2); the fraction t = |AB| / |AC| fixes B's frame position on the diagonal exactly
  (a point-to-point fiducial);
* A and C lie on their vertical rods, whose frame x and y are known: point-to-line fiducials (their
  position along the rod is not known from one slice, only that they are on it).

All fiducials of all slices and N-localizers are fitted at once (least squares over the rotation and
translation). Which detected N is which model N, and which of its verticals comes first, is decided by
trying every assignment (closed-form Kabsch fit on the diagonal points) and keeping the best one whose
rotation from image to frame axes is plausible (the frame sits on the head roughly along the patient's
axes). A residual pattern that no rigid transform explains (wrong geometry file, scaled image) is
refused; an affine fit of the same fiducials names the scaling.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from ..io.exceptions import DBSInputError
from .localizer_geometry import LocalizerGeometry, NLocalizer
from .rod_detection import DetectedN, Dots

#: Largest plausible rotation between the image's RAS axes and the frame's (degrees).
MAX_ROTATION_DEG = 45.0
#: Refuse when the rigid fit leaves more than this RMS residual (mm) ...
MAX_RMS_MM = 1.0
#: ... or when an affine fit of the fiducials scales some axis by more than this fraction.
MAX_SCALE_DEVIATION = 0.015


@dataclass
class Fiducials:
    """Fiducial correspondences. Diagonal: ``image_ras`` -> ``frame_point``. Vertical: ``image_ras``
    -> the line through ``frame_point`` along ``frame_direction``."""

    image_ras: np.ndarray  # (n, 3)
    frame_point: np.ndarray  # (n, 3)
    frame_direction: np.ndarray  # (n, 3); zero for point fiducials
    kind: np.ndarray  # "diagonal" | "vertical"
    n_localizer: np.ndarray  # model N-localizer name
    rod: np.ndarray  # model rod id
    slice: np.ndarray  # slice index
    dot: np.ndarray  # index into Dots

    def __len__(self) -> int:
        return len(self.image_ras)

    def residual_vectors(self, image_to_frame: np.ndarray) -> np.ndarray:
        """(n, 3) residuals in frame RAS: point offset (diagonal) or offset perpendicular to the rod (vertical)."""
        mapped = self.image_ras @ image_to_frame[:3, :3].T + image_to_frame[:3, 3]
        offset = mapped - self.frame_point
        along = np.sum(offset * self.frame_direction, axis=1)
        return offset - along[:, None] * self.frame_direction

    def residuals(self, image_to_frame: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self.residual_vectors(image_to_frame), axis=1)

    def frame_reference(self, image_to_frame: np.ndarray) -> np.ndarray:
        """Each fiducial's model point: the diagonal point, or the closest point of the vertical rod."""
        mapped = self.image_ras @ image_to_frame[:3, :3].T + image_to_frame[:3, 3]
        along = np.sum((mapped - self.frame_point) * self.frame_direction, axis=1)
        return self.frame_point + along[:, None] * self.frame_direction


def build_fiducials(detected: list[DetectedN], assignment: tuple, dots: Dots, geometry: LocalizerGeometry) -> Fiducials:
    """Fiducials for one assignment: ``assignment[i] = (model N index, flipped)`` for detected N ``i``."""
    rows = []
    for detected_n, (model_index, flipped) in zip(detected, assignment):
        model: NLocalizer = geometry.n_localizers[model_index]
        first, second = (model.vertical_2, model.vertical_1) if flipped else (model.vertical_1, model.vertical_2)
        for k, a, b, c, t in detected_n.triples:
            fraction = 1.0 - t if flipped else t
            rows.append((dots.ras[b], model.diagonal_point(fraction), np.zeros(3), "diagonal", model.name,
                         model.diagonal, k, b))
            for dot, rod in ((a, first), (c, second)):
                ends = geometry.rods[rod]
                direction = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
                rows.append((dots.ras[dot], ends[0], direction, "vertical", model.name, rod, k, dot))
    columns = list(zip(*rows))
    return Fiducials(np.array(columns[0], float), np.array(columns[1], float), np.array(columns[2], float),
                     np.array(columns[3]), np.array(columns[4]), np.array(columns[5]), np.array(columns[6], int),
                     np.array(columns[7], int))


def kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 proper rigid transform minimising |R source + t - target|² (no reflection)."""
    source_centre, target_centre = source.mean(axis=0), target.mean(axis=0)
    covariance = (source - source_centre).T @ (target - target_centre)
    u, _, vt = np.linalg.svd(covariance)
    correction = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T)) or 1.0])
    rotation = vt.T @ correction @ u.T
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = target_centre - rotation @ source_centre
    return matrix


def rotation_angle_deg(matrix: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(Rotation.from_matrix(matrix[:3, :3]).as_rotvec())))


def refine(fiducials: Fiducials, initial: np.ndarray) -> np.ndarray:
    """Least-squares rigid fit of all fiducials (point-to-point and point-to-line) from ``initial``."""
    centre = fiducials.image_ras.mean(axis=0)  # rotate about the fiducials' centre: better conditioned

    def matrix_of(parameters):
        matrix = np.eye(4)
        matrix[:3, :3] = Rotation.from_rotvec(parameters[:3]).as_matrix()
        matrix[:3, 3] = parameters[3:] - matrix[:3, :3] @ centre
        return matrix

    start = np.concatenate([Rotation.from_matrix(initial[:3, :3]).as_rotvec(),
                            initial[:3, :3] @ centre + initial[:3, 3]])
    solution = least_squares(lambda p: fiducials.residual_vectors(matrix_of(p)).ravel(), start,
                             method="lm", xtol=1e-12, ftol=1e-12)
    return matrix_of(solution.x)


def affine_fit(fiducials: Fiducials) -> np.ndarray | None:
    """Best affine image->frame map of the same fiducials (linear least squares), or None when the
    fiducials do not determine one well (e.g. two parallel plates only)."""
    n = len(fiducials)
    projector = np.repeat(np.eye(3)[None], n, axis=0)
    vertical = fiducials.kind == "vertical"
    d = fiducials.frame_direction[vertical]
    projector[vertical] -= d[:, :, None] * d[:, None, :]
    centre = fiducials.image_ras.mean(axis=0)
    scaled = (fiducials.image_ras - centre) / 100.0  # conditioning: centred, in 100 mm units
    homogeneous = np.concatenate([scaled, np.ones((n, 1))], axis=1)
    design = (projector[:, :, :, None] * homogeneous[:, None, None, :]).reshape(3 * n, 12)
    rhs = np.einsum("nij,nj->ni", projector, fiducials.frame_point).ravel()
    solution, _, rank, singular = np.linalg.lstsq(design, rhs, rcond=None)
    if rank < 12 or singular[-1] < 0.05 * singular[0]:
        return None
    linear = solution.reshape(3, 4)
    matrix = np.eye(4)
    matrix[:3, :3] = linear[:, :3] / 100.0
    matrix[:3, 3] = linear[:, 3] - matrix[:3, :3] @ centre
    return matrix


@dataclass
class RigidFit:
    image_to_frame_ras: np.ndarray
    fiducials: Fiducials
    residuals_mm: np.ndarray
    rms_mm: float
    max_mm: float
    rotation_deg: float
    affine_scales: list | None
    affine_mirrors: bool  # the affine fit of the fiducials has a negative determinant (a flipped image)
    assignment: tuple
    hypotheses_tried: int
    detected: list  # the DetectedN used, in the order of ``assignment``


def fit_localizer(detected: list[DetectedN], dots: Dots, geometry: LocalizerGeometry,
                  max_rotation_deg: float = MAX_ROTATION_DEG, max_rms_mm: float = MAX_RMS_MM,
                  max_scale_deviation: float = MAX_SCALE_DEVIATION) -> RigidFit:
    """Assign the detected N-localizers to the model's, fit all fiducials rigidly, check the fit."""
    model_count = len(geometry.n_localizers)
    used = min(len(detected), model_count)
    best = None
    tried = 0
    for subset in itertools.combinations(range(len(detected)), used):
        chosen = [detected[i] for i in subset]
        for models in itertools.permutations(range(model_count), used):
            for flips in itertools.product((False, True), repeat=used):
                assignment = tuple(zip(models, flips))
                fiducials = build_fiducials(chosen, assignment, dots, geometry)
                diagonal = fiducials.kind == "diagonal"
                matrix = kabsch(fiducials.image_ras[diagonal], fiducials.frame_point[diagonal])
                tried += 1
                if rotation_angle_deg(matrix) > max_rotation_deg:
                    continue
                rms = float(np.sqrt(np.mean(fiducials.residuals(matrix) ** 2)))
                if best is None or rms < best[0]:
                    best = (rms, assignment, fiducials, matrix, chosen)
    if best is None:
        raise DBSInputError(
            f"the localizer rods found match the --localizer geometry only if the frame were rotated by more than "
            f"{max_rotation_deg:.0f}° from the image axes: check the geometry file and the image orientation"
        )
    _, assignment, fiducials, initial, chosen = best
    matrix = refine(fiducials, initial)
    residuals = fiducials.residuals(matrix)
    rms = float(np.sqrt(np.mean(residuals ** 2)))
    affine = affine_fit(fiducials)
    scales = None if affine is None else [float(s) for s in np.linalg.svd(affine[:3, :3], compute_uv=False)]
    mirrors = affine is not None and float(np.linalg.det(affine[:3, :3])) < 0
    fit = RigidFit(matrix, fiducials, residuals, rms, float(residuals.max()), rotation_angle_deg(matrix),
                   scales, mirrors, assignment, tried, chosen)
    check_rigid_fit(fit, max_rms_mm, max_scale_deviation)
    return fit


def check_rigid_fit(fit: RigidFit, max_rms_mm: float = MAX_RMS_MM,
                    max_scale_deviation: float = MAX_SCALE_DEVIATION) -> None:
    scaled = fit.affine_scales is not None and max(abs(s - 1.0) for s in fit.affine_scales) > max_scale_deviation
    if fit.rms_mm > max_rms_mm or scaled:
        scaling = ("" if fit.affine_scales is None else
                   "; an affine fit scales it by " + " / ".join(f"{s:.3f}" for s in fit.affine_scales))
        if fit.affine_mirrors:
            scaling = "; the fiducials fit only mirrored: is the image flipped (e.g. left-right) in its header?"
        raise DBSInputError(
            f"the localizer does not fit the image rigidly: RMS residual {fit.rms_mm:.2f} mm (max "
            f"{fit.max_mm:.2f} mm; limit {max_rms_mm:g} mm){scaling}: check the --localizer geometry "
            "(frame model, plate distances) and the image (pixel spacing, distortion)"
        )


def transform_error_mm(estimate: np.ndarray, truth: np.ndarray, radius_mm: float = 60.0,
                       centre_frame_ras=(0.0, 0.0, 0.0), samples: int = 2000) -> tuple[float, float]:
    """(max, mean) distance between two image->frame maps over a ball of ``radius_mm`` around a frame
    point (frame centre by default): sampled on the sphere (where a rigid error is largest) and inside."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(samples, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = np.concatenate([np.full(samples // 2, radius_mm), radius_mm * rng.uniform(0, 1, samples - samples // 2) ** (1 / 3)])
    frame_points = np.asarray(centre_frame_ras, float) + directions * radii[:, None]
    truth_inverse = np.linalg.inv(truth)
    image_points = frame_points @ truth_inverse[:3, :3].T + truth_inverse[:3, 3]
    mapped = image_points @ estimate[:3, :3].T + estimate[:3, 3]
    error = np.linalg.norm(mapped - frame_points, axis=1)
    return float(error.max()), float(error[samples // 2:].mean())

