"""Direct and indirect targets (DESIGN §5).

Bejjani construction, generalised to 3D in AC-PC space: in the axial plane ``level_mm`` below the
AC-PC plane, the common anterior tangent of both red nuclei; walking outward along it from the
midline, where it first enters each STN are A (left) and B (right); C = |AB|; each side's target lies
D outward along the line and E posterior, perpendicular to it, from its crossing (D and E are set as
ratios of C). It never guesses: a side whose red nucleus is missing, whose STN the line misses, or
whose segmentation is flagged inadequate fails with its reason; the other side is still planned.

Structure borders are read with sub-voxel precision: the binary masks are interpolated linearly and
cut at 0.5, so the construction does not move in whole voxels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage import measure

from ..geometry.acpc import AcpcSpace, describe_acpc_point
from ..io.volumes import Volume
from ..segmentation.labels import BY_NAME

SIDES = ("left", "right")
#: Sign of the AC-PC x coordinate on each side (x points to the patient's right).
SIDE_SIGN = {"left": -1.0, "right": 1.0}

#: C:D and C:E of the source study (Bejjani et al. 2000), as D/C and E/C.
BEJJANI_PRESETS = {"stn": (2.0 / 20.0, 1.0 / 20.0), "psa": (2.0 / 20.0, 4.0 / 20.0)}
DEFAULT_LEVEL_MM = -4.0

#: In-plane sampling of the construction plane (AC-PC mm) and its extent around the MCP.
PLANE_STEP_MM = 0.1
PLANE_HALF_WIDTH_MM = 40.0
PLANE_AP_RANGE_MM = (-45.0, 25.0)
#: How far outward from the midline the line is searched for the STN's medial border.
MAX_STN_SEARCH_MM = 40.0
SEARCH_STEP_MM = 0.02
BORDER_SMOOTHING_VOXELS = 0.5

#: Indirect targets relative to the MCP: (lateral, AP, vertical) mm, as commonly used.
INDIRECT_TARGETS_ACPC = {"stn": (12.0, -2.5, -4.0), "gpi": (20.0, 2.5, -4.0), "vim": (13.0, -6.0, 0.0)}


class SideFailure(Exception):
    """The construction cannot be made on one side; the message says why."""


@dataclass
class SideTarget:
    side: str
    target_ras: Optional[list] = None
    target_acpc: Optional[list] = None
    crossing_acpc: Optional[list] = None  # A (left) or B (right)
    failure: Optional[str] = None
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class BejjaniResult:
    preset: str
    d_ratio: float
    e_ratio: float
    level_mm: float
    line_point_acpc: Optional[list]
    line_direction_acpc: Optional[list]  # unit, pointing to the patient's right
    c_mm: Optional[float]
    sides: dict  # side -> SideTarget
    level_sensitivity_mm: dict = field(default_factory=dict)  # side -> {"-1": mm, "+1": mm}

    def to_dict(self) -> dict:
        data = asdict(self)
        for side, target in self.sides.items():
            if target.target_acpc is not None:
                data["sides"][side]["target_acpc_clinical"] = describe_acpc_point(target.target_acpc)
        return data


class _StructureSampler:
    """Smoothed, linearly interpolated binary mask of one structure at AC-PC points; 0.5 is the border.

    A light Gaussian (σ = ``BORDER_SMOOTHING_VOXELS``) removes the voxel staircase, so a border crossed
    at a shallow angle is not displaced by whole steps; on convex nuclei it moves the 0.5 level by
    about σ²/(2·radius), a few hundredths of a millimetre."""

    def __init__(self, labels: Volume, acpc: AcpcSpace, code: int):
        mask = labels.array == code
        self.present = bool(mask.any())
        self.mask = ndimage.gaussian_filter(mask.astype(np.float32), BORDER_SMOOTHING_VOXELS) if self.present else mask.astype(np.float32)
        self.labels = labels
        self.acpc = acpc

    def __call__(self, points_acpc: np.ndarray) -> np.ndarray:
        ijk = self.labels.ras_to_ijk_points(self.acpc.to_ras(points_acpc))
        kji = ijk[..., ::-1].reshape(-1, 3).T
        return ndimage.map_coordinates(self.mask, kji, order=1, mode="constant", cval=0.0).reshape(ijk.shape[:-1])


def _plane_grid(level_mm: float):
    xs = np.arange(-PLANE_HALF_WIDTH_MM, PLANE_HALF_WIDTH_MM + 1e-9, PLANE_STEP_MM)
    ys = np.arange(PLANE_AP_RANGE_MM[0], PLANE_AP_RANGE_MM[1] + 1e-9, PLANE_STEP_MM)
    grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")
    points = np.stack([grid_x, grid_y, np.full_like(grid_x, level_mm)], axis=-1)
    return xs, ys, points


def _border_points_in_plane(sampler: _StructureSampler, level_mm: float) -> np.ndarray:
    """Sub-voxel border of a structure's cross-section in the plane, as (x, y) AC-PC points."""
    xs, ys, points = _plane_grid(level_mm)
    values = sampler(points)
    if values.max() < 0.5:
        return np.empty((0, 2))
    contours = measure.find_contours(values, 0.5)
    border = np.concatenate(contours)
    return np.column_stack([
        np.interp(border[:, 0], np.arange(len(xs)), xs),
        np.interp(border[:, 1], np.arange(len(ys)), ys),
    ])


def _anterior_tangent(left_border: np.ndarray, right_border: np.ndarray):
    """Common anterior tangent of two cross-sections: the convex-hull edge bridging them in front.

    Returns (point on the line, unit direction pointing right) in the plane's (x, y)."""
    points = np.vstack([left_border, right_border])
    from_left = np.r_[np.ones(len(left_border), bool), np.zeros(len(right_border), bool)]
    hull = ConvexHull(points)
    for simplex, equation in zip(hull.simplices, hull.equations):
        normal = equation[:2]  # outward normal of this hull edge
        first, second = simplex
        if normal[1] > 0 and from_left[first] != from_left[second]:
            left_point, right_point = (points[first], points[second]) if from_left[first] else (points[second], points[first])
            direction = right_point - left_point
            return left_point, direction / np.linalg.norm(direction)
    raise SideFailure("the red nuclei have no common anterior tangent (do they overlap?)")


def _one_sided_tangent(border: np.ndarray):
    """Fallback with one red nucleus: the tangent to its anterior margin, perpendicular to the
    midsagittal plane."""
    front = border[np.argmax(border[:, 1])]
    return front, np.array([1.0, 0.0])


def _medial_border_crossing(stn: _StructureSampler, line_point: np.ndarray, direction: np.ndarray,
                            side: str, level_mm: float) -> np.ndarray:
    """Walking outward from the midline along the line, the first point inside the STN (sub-voxel)."""
    outward = direction * SIDE_SIGN[side]
    # The line's crossing with the midsagittal plane x = 0.
    start = line_point - (line_point[0] / direction[0]) * direction
    steps = np.arange(0.0, MAX_STN_SEARCH_MM, SEARCH_STEP_MM)
    points_2d = start + steps[:, None] * outward
    values = stn(np.column_stack([points_2d, np.full(len(steps), level_mm)]))
    inside = np.nonzero(values >= 0.5)[0]
    if len(inside) == 0:
        raise SideFailure(f"the red nucleus tangent line misses the {side} STN at {level_mm:+.1f} mm from the AC-PC plane")
    first = inside[0]
    if first == 0:
        raise SideFailure(f"the {side} STN reaches the midline at {level_mm:+.1f} mm: segmentation implausible")
    # Linear interpolation of the 0.5 crossing between the last outside and the first inside sample.
    fraction = (0.5 - values[first - 1]) / (values[first] - values[first - 1])
    return points_2d[first - 1] + fraction * (points_2d[first] - points_2d[first - 1])


def _construct(labels: Volume, acpc: AcpcSpace, level_mm: float, d_ratio: float, e_ratio: float,
               blocked_sides: dict) -> tuple:
    samplers = {
        (nucleus, side): _StructureSampler(labels, acpc, BY_NAME[f"{nucleus}_{side}"].code)
        for nucleus in ("RN", "STN") for side in SIDES
    }
    failures: dict = dict(blocked_sides)
    notes: dict = {side: [] for side in SIDES}
    rn_borders = {}
    for side in SIDES:
        border = _border_points_in_plane(samplers[("RN", side)], level_mm)
        if len(border) < 3:
            where = "missing from the segmentation" if not samplers[("RN", side)].present else f"not cut by the plane {level_mm:+.1f} mm from the AC-PC plane"
            failures.setdefault(side, f"the {side} red nucleus is {where}")
        else:
            rn_borders[side] = border
    if len(rn_borders) == 2:
        line_point, direction = _anterior_tangent(rn_borders["left"], rn_borders["right"])
    elif len(rn_borders) == 1:
        (only_side, border), = rn_borders.items()
        line_point, direction = _one_sided_tangent(border)
        notes[only_side].append(
            "only one red nucleus: line tangent to its anterior margin, perpendicular to the midsagittal plane"
        )
    else:
        return None, None, None, failures, {}, notes
    crossings = {}
    for side in SIDES:
        if side in failures:
            continue
        try:
            crossings[side] = _medial_border_crossing(samplers[("STN", side)], line_point, direction, side, level_mm)
        except SideFailure as failure:
            failures[side] = str(failure)
    if len(crossings) == 2:
        c_mm = float(np.linalg.norm(crossings["right"] - crossings["left"]))
    elif len(crossings) == 1:
        (side, crossing), = crossings.items()
        start = line_point - (line_point[0] / direction[0]) * direction
        c_mm = 2.0 * float(np.linalg.norm(crossing - start))
        notes[side].append("C estimated as twice the distance from the midline to this side's crossing")
    else:
        return line_point, direction, None, failures, {}, notes
    posterior = np.array([direction[1], -direction[0]])  # perpendicular in the plane, pointing posterior
    targets = {}
    for side, crossing in crossings.items():
        target_2d = crossing + d_ratio * c_mm * SIDE_SIGN[side] * direction + e_ratio * c_mm * posterior
        targets[side] = (np.r_[crossing, level_mm], np.r_[target_2d, level_mm])
    return line_point, direction, c_mm, failures, targets, notes


def bejjani_targets(labels: Volume, acpc: AcpcSpace, preset: str = "stn", level_mm: float = DEFAULT_LEVEL_MM,
                    d_ratio: Optional[float] = None, e_ratio: Optional[float] = None,
                    inadequate_sides: Optional[dict] = None) -> BejjaniResult:
    """Bejjani construction on a label map (our label codes) in AC-PC space.

    ``preset`` is "stn" or "psa" (ratios of the study) or "custom" with ``d_ratio`` and ``e_ratio``
    (D/C, E/C). ``inadequate_sides`` maps a side to the reason its segmentation was flagged; that side
    is not planned."""
    if preset in BEJJANI_PRESETS:
        default_d, default_e = BEJJANI_PRESETS[preset]
        d_ratio = default_d if d_ratio is None else d_ratio
        e_ratio = default_e if e_ratio is None else e_ratio
    elif d_ratio is None or e_ratio is None:
        raise ValueError(f"preset '{preset}' needs d_ratio and e_ratio")
    blocked = {side: f"{side} segmentation flagged inadequate: {reason}" for side, reason in (inadequate_sides or {}).items()}

    line_point, direction, c_mm, failures, targets, notes = _construct(labels, acpc, level_mm, d_ratio, e_ratio, blocked)
    sides = {}
    for side in SIDES:
        if side in targets:
            crossing, target_acpc = targets[side]
            sides[side] = SideTarget(side, acpc.to_ras(target_acpc).tolist(), target_acpc.tolist(),
                                     crossing.tolist(), notes=notes[side])
        else:
            reason = failures.get(side, "no target could be constructed")
            sides[side] = SideTarget(side, failure=reason, notes=notes[side])
    result = BejjaniResult(
        preset, float(d_ratio), float(e_ratio), float(level_mm),
        None if line_point is None else [*map(float, line_point), level_mm],
        None if direction is None else [*map(float, direction), 0.0],
        c_mm, sides,
    )
    # Sensitivity: how far each target moves when the plane level changes by ±1 mm.
    for shift in (-1.0, 1.0):
        *_, shifted_targets, _ = _construct(labels, acpc, level_mm + shift, d_ratio, e_ratio, blocked)
        for side, target in sides.items():
            if target.ok:
                moved = (float(np.linalg.norm(shifted_targets[side][1] - np.array(target.target_acpc)))
                         if side in shifted_targets else None)
                result.level_sensitivity_mm.setdefault(side, {})[f"{shift:+.0f}"] = moved
    return result


def indirect_targets(acpc: AcpcSpace) -> dict:
    """Indirect targets of both sides: {name: {side: {"ras", "acpc"}}} from the MCP offsets."""
    result = {}
    for name, (lateral, ap, vertical) in INDIRECT_TARGETS_ACPC.items():
        result[name] = {}
        for side in SIDES:
            point_acpc = np.array([SIDE_SIGN[side] * lateral, ap, vertical])
            result[name][side] = {"acpc": point_acpc.tolist(), "ras": acpc.to_ras(point_acpc).tolist()}
    return result
