"""The surgical plan: direct targets, indirect targets beside them, trajectories, frame settings.

Each side is planned independently: a side whose construction fails carries its reason and no
trajectory, and the other side is still planned (DESIGN §5).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ..geometry.acpc import AcpcSpace, describe_acpc_point
from ..geometry.frame import FrameSpace, round_to_half
from ..geometry.trajectory import Trajectory
from ..io.exceptions import DBSInputError
from ..io.volumes import Volume
from ..segmentation.labels import BY_CODE, BY_NAME, STRUCTURES
from .targets import SIDE_SIGN, SIDES, bejjani_targets, indirect_targets

TARGET_KINDS = ("stn", "psa", "gpi")
#: Typical approach: the trajectory seen from the side rises this much above the AC-PC plane
#: (anterior), and seen from the front leans this much off the midsagittal plane (lateral).
DEFAULT_SAGITTAL_ANGLE_DEG = 60.0
DEFAULT_CORONAL_ANGLE_DEG = 15.0
#: Distance from the target to the proposed entry point along the approach.
DEFAULT_ENTRY_DISTANCE_MM = 70.0
#: Sampling step along a trajectory when looking for the structures it passes.
TRAJECTORY_STEP_MM = 0.25
#: Name of the caudate in distances and warnings: it comes from the CIT168 atlas, not the segmentation.
CAUDATE_ATLAS_NAME = "caudate (atlas estimate)"
#: The indirect target each direct target is compared with.
MATCHING_INDIRECT = {"stn": "stn", "psa": "stn", "gpi": "gpi"}
#: Nuclei whose quality flags block automatic targeting of a side, per target.
NUCLEI_FOR_TARGET = {"stn": ("RN", "STN"), "psa": ("RN", "STN"), "gpi": ("GPi",)}
#: Structures a trajectory to each target may pass through (same side); any other crossing is warned.
ALLOWED_CROSSINGS = {"stn": ("STN",), "psa": ("STN",), "gpi": ("GPi", "GPe")}

GPI_RULE = (
    "centroid of the posteroventral quarter of the GPi: the GPi voxels of that side posterior to the "
    "median AC-PC y and below the median AC-PC z of the nucleus. Basis: the sensorimotor territory of "
    "the GPi, the classical target of posteroventral pallidotomy and pallidal DBS, is its posteroventral "
    "part (Laitinen, Bergenheim & Hariz, J Neurosurg 1992;76:53-61)."
)


@dataclass
class TrajectoryPlan:
    name: str  # e.g. "L STN"
    side: str
    target_kind: str
    target_ras: list
    target_acpc: list
    entry_ras: list
    entry_acpc: list
    entry_source: str
    length_mm: float
    ring_deg: float
    arc_deg: float
    set_ring_deg: float
    set_arc_deg: float
    target_leksell: list
    entry_leksell: list
    set_target_leksell: list
    indirect_target_ras: list
    direct_to_indirect_mm: float
    structure_distances_mm: dict = field(default_factory=dict)
    crossed_structures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


@dataclass
class CasePlan:
    target_kind: str
    mounting: str
    frame: str
    acpc: dict
    direct: dict  # the construction's own output (Bejjani result or GPi rule)
    indirect: dict
    trajectories: list
    failures: dict  # side -> reason

    def to_dict(self) -> dict:
        return asdict(self)


def gpi_targets(labels: Volume, acpc: AcpcSpace, blocked: Optional[dict] = None) -> dict:
    """Posteroventral GPi target per side, or the reason it could not be made."""
    result = {"rule": GPI_RULE, "sides": {}}
    for side in SIDES:
        if blocked and side in blocked:
            result["sides"][side] = {"failure": f"{side} segmentation flagged inadequate: {blocked[side]}"}
            continue
        voxels = np.argwhere(labels.array == BY_NAME[f"GPi_{side}"].code)  # (k, j, i)
        if len(voxels) < 10:
            result["sides"][side] = {"failure": f"the {side} GPi is missing from the segmentation"}
            continue
        points = acpc.to_acpc(labels.ijk_to_ras_points(voxels[:, ::-1]))
        posteroventral = points[(points[:, 1] <= np.median(points[:, 1])) & (points[:, 2] <= np.median(points[:, 2]))]
        target = posteroventral.mean(axis=0)
        if np.sign(target[0]) != SIDE_SIGN[side]:
            result["sides"][side] = {"failure": f"the {side} GPi lies on the wrong side of the midline"}
            continue
        result["sides"][side] = {"target_acpc": target.tolist(), "target_ras": acpc.to_ras(target).tolist()}
    return result


def approach_direction_acpc(side: str, sagittal_angle_deg: float, coronal_angle_deg: float) -> np.ndarray:
    """Unit vector from target towards the entry, in AC-PC axes, for the given approach angles."""
    if not 0 < sagittal_angle_deg < 180:
        raise DBSInputError(f"sagittal approach angle {sagittal_angle_deg}° must be within (0, 180)")
    if not -90 < coronal_angle_deg < 90:
        raise DBSInputError(f"coronal approach angle {coronal_angle_deg}° must be within (-90, 90)")
    vector = np.array([
        SIDE_SIGN[side] * math.tan(math.radians(coronal_angle_deg)),
        1.0 / math.tan(math.radians(sagittal_angle_deg)),
        1.0,
    ])
    return vector / np.linalg.norm(vector)


def _distance_to_segment(points_ras: np.ndarray, trajectory: Trajectory) -> float:
    """Smallest distance (mm) from any of the points to the entry-target segment."""
    relative = points_ras - trajectory.entry_ras
    along = np.clip(relative @ trajectory.insertion_direction_ras, 0.0, trajectory.length_mm)
    nearest = trajectory.entry_ras + along[:, None] * trajectory.insertion_direction_ras
    return float(np.linalg.norm(points_ras - nearest, axis=1).min())


def _codes_along(trajectory: Trajectory, volume: Volume, ras_to_volume_ras: Optional[np.ndarray] = None) -> np.ndarray:
    """Values of ``volume`` (nearest voxel) at points every TRAJECTORY_STEP_MM from the entry to the target;
    ``ras_to_volume_ras`` maps the trajectory's space into the volume's when they differ."""
    depths = np.arange(0.0, trajectory.length_mm + 1e-9, TRAJECTORY_STEP_MM)
    points = trajectory.entry_ras + depths[:, None] * trajectory.insertion_direction_ras
    if ras_to_volume_ras is not None:
        points = points @ ras_to_volume_ras[:3, :3].T + ras_to_volume_ras[:3, 3]
    ijk = np.rint(volume.ras_to_ijk_points(points)).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(volume.shape_ijk)), axis=1)
    return volume.array[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]]


def structures_along(trajectory: Trajectory, labels: Volume) -> tuple[dict, list]:
    """Closest distance (mm, voxel centres) from the segment to every segmented structure, and the
    structures whose voxels the segment passes through, in order from the entry."""
    distances = {}
    for structure in STRUCTURES:
        voxels = np.argwhere(labels.array == structure.code)
        if len(voxels):
            distances[structure.name] = _distance_to_segment(labels.ijk_to_ras_points(voxels[:, ::-1]), trajectory)
    crossed = []
    for code in _codes_along(trajectory, labels):
        if code and BY_CODE.get(int(code)) and BY_CODE[int(code)].name not in crossed:
            crossed.append(BY_CODE[int(code)].name)
    return distances, crossed


def atlas_caudate_along(trajectory: Trajectory, template_to_image_ras: np.ndarray) -> tuple[float, bool]:
    """Closest distance (mm) from the segment to the CIT168 caudate carried into the image by the
    localization's template-to-image map, and whether the segment passes through it. An atlas
    estimate (the caudate is not segmented): it can be off by the registration's error."""
    from ..io.volumes import read_volume
    from ..segmentation.template import SHIPPED_CAUDATE

    caudate = read_volume(SHIPPED_CAUDATE)
    voxels = np.argwhere(caudate.array > 0)
    points = caudate.ijk_to_ras_points(voxels[:, ::-1])
    points_image = points @ template_to_image_ras[:3, :3].T + template_to_image_ras[:3, 3]
    crossed = bool(np.any(_codes_along(trajectory, caudate, np.linalg.inv(template_to_image_ras)) > 0))
    return _distance_to_segment(points_image, trajectory), crossed


def plan_case(
    labels: Volume,
    acpc: AcpcSpace,
    target_kind: str = "stn",
    mounting: str = "lateral-right",
    frame: Optional[FrameSpace] = None,
    entries_ras: Optional[dict] = None,
    sagittal_angle_deg: float = DEFAULT_SAGITTAL_ANGLE_DEG,
    coronal_angle_deg: float = DEFAULT_CORONAL_ANGLE_DEG,
    entry_distance_mm: float = DEFAULT_ENTRY_DISTANCE_MM,
    level_mm: float = -4.0,
    d_ratio: Optional[float] = None,
    e_ratio: Optional[float] = None,
    inadequate_sides: Optional[dict] = None,
    template_to_image_ras: Optional[np.ndarray] = None,
) -> CasePlan:
    """Plan both sides. ``entries_ras`` maps a side to a user-given entry point (else the approach
    angles are used); ``inadequate_sides`` maps a side to the quality flag that blocks it;
    ``template_to_image_ras`` (the localization's map) enables the atlas caudate check."""
    if target_kind not in TARGET_KINDS:
        raise DBSInputError(f"unknown target '{target_kind}': use one of {', '.join(TARGET_KINDS)}")
    if not entry_distance_mm > 0:
        raise DBSInputError(f"entry distance must be positive, got {entry_distance_mm}")
    frame = frame or FrameSpace.virtual(acpc)
    if target_kind == "gpi":
        direct = gpi_targets(labels, acpc, inadequate_sides)
        side_targets = {side: direct["sides"][side] for side in SIDES}
    else:
        bejjani = bejjani_targets(labels, acpc, preset=target_kind if d_ratio is None else "custom",
                                  level_mm=level_mm, d_ratio=d_ratio, e_ratio=e_ratio,
                                  inadequate_sides=inadequate_sides)
        direct = bejjani.to_dict()
        side_targets = {
            side: ({"target_ras": t.target_ras, "target_acpc": t.target_acpc} if t.ok else {"failure": t.failure})
            for side, t in bejjani.sides.items()
        }
    indirect = indirect_targets(acpc)
    trajectories, failures = [], {}
    for side in SIDES:
        found = side_targets[side]
        if "failure" in found:
            failures[side] = found["failure"]
            continue
        target_ras = np.array(found["target_ras"])
        if entries_ras and side in entries_ras:
            entry_ras, entry_source = np.asarray(entries_ras[side], float), "user"
        else:
            direction = acpc.axes_ras.T @ approach_direction_acpc(side, sagittal_angle_deg, coronal_angle_deg)
            entry_ras = target_ras + entry_distance_mm * direction
            entry_source = (f"approach {sagittal_angle_deg:g}° above the AC-PC plane (sagittal view), "
                            f"{coronal_angle_deg:g}° off the midsagittal plane (coronal view), {entry_distance_mm:g} mm")
        trajectory = Trajectory(entry_ras=entry_ras, target_ras=target_ras)
        ring_deg, arc_deg = frame.ring_arc(target_ras, entry_ras, mounting)
        target_leksell, entry_leksell = frame.leksell(target_ras), frame.leksell(entry_ras)
        indirect_ras = np.array(indirect[MATCHING_INDIRECT[target_kind]][side]["ras"])
        distances, crossed = structures_along(trajectory, labels)
        allowed = {f"{nucleus}_{side}" for nucleus in ALLOWED_CROSSINGS[target_kind]}
        warnings = [f"trajectory passes through {name}" for name in crossed if name not in allowed]
        entry_side = describe_acpc_point(acpc.to_acpc(entry_ras))["side"]
        if entry_side != side:
            warnings.append(f"entry point lies in the {entry_side} hemisphere for a {side} target")
        if template_to_image_ras is not None:
            caudate_mm, caudate_crossed = atlas_caudate_along(trajectory, np.asarray(template_to_image_ras, float))
            distances[CAUDATE_ATLAS_NAME] = caudate_mm
            if caudate_crossed:
                crossed.append(CAUDATE_ATLAS_NAME)
                warnings.append(f"trajectory passes through the {CAUDATE_ATLAS_NAME}")
        trajectories.append(TrajectoryPlan(
            name=f"{side[0].upper()} {target_kind.upper()}", side=side, target_kind=target_kind,
            target_ras=target_ras.tolist(), target_acpc=acpc.to_acpc(target_ras).tolist(),
            entry_ras=entry_ras.tolist(), entry_acpc=acpc.to_acpc(entry_ras).tolist(), entry_source=entry_source,
            length_mm=trajectory.length_mm, ring_deg=ring_deg, arc_deg=arc_deg,
            set_ring_deg=round_to_half(ring_deg), set_arc_deg=round_to_half(arc_deg),
            target_leksell=target_leksell.tolist(), entry_leksell=entry_leksell.tolist(),
            set_target_leksell=[round_to_half(v) for v in target_leksell],
            indirect_target_ras=indirect_ras.tolist(),
            direct_to_indirect_mm=float(np.linalg.norm(target_ras - indirect_ras)),
            structure_distances_mm=distances, crossed_structures=crossed, warnings=warnings,
        ))
    acpc_summary = {
        "ac_ras": acpc.ac_ras.tolist(), "pc_ras": acpc.pc_ras.tolist(), "midline_ras": acpc.midline_ras.tolist(),
        "mcp_ras": acpc.mcp_ras.tolist(), "acpc_length_mm": acpc.acpc_length_mm,
    }
    return CasePlan(target_kind, mounting, frame.description, acpc_summary, direct, indirect, trajectories, failures)


def blocked_sides(quality: list, target_kind: str) -> dict:
    """Sides whose segmentation of the nuclei this target depends on carries a quality flag."""
    blocked = {}
    for structure in quality:
        nucleus, side = structure["name"].split("_")
        if nucleus in NUCLEI_FOR_TARGET[target_kind] and structure["flags"]:
            reason = f"{structure['name']} {', '.join(structure['flags'])}"
            blocked[side] = f"{blocked[side]}; {reason}" if side in blocked else reason
    return blocked


def plan_with_quality(labels: Volume, acpc: AcpcSpace, target_kind: str = "stn", **plan_options) -> dict:
    """Quality-check the label map, block the sides it flags, plan the rest: the ``plan.json`` content
    (with ``segmentation_quality``). ``plan_options`` go to :func:`plan_case`."""
    from ..segmentation.quality import structure_quality

    quality = [s.to_dict() for s in structure_quality(labels, acpc)]
    plan = plan_case(labels, acpc, target_kind, inadequate_sides=blocked_sides(quality, target_kind), **plan_options)
    return {**plan.to_dict(), "segmentation_quality": quality}
