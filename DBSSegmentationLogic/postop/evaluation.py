"""The science of the post-operative evaluation, apart from the command line: the plan read back, leads
found on the CT (or given by hand) moved into the planning MRI's space, their sides from the AC-PC x of
their tips (never an image axis), and the check that every tip lies inside the brain."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry.acpc import AcpcSpace
from ..io.exceptions import DBSInputError
from ..io.json_documents import read_json_document
from . import fusion as fusion_logic
from .electrodes import DetectedLead, lead_from_points, localize_leads

SIDES = ("left", "right")
#: A lead tip must lie at least this deep inside the MRI's head (or brain, for a skull-stripped MRI)
#: outline, and at least this deep inside the CT's head (beneath scalp and skull).
MIN_TIP_DEPTH_MRI_MM = 3.0
MIN_TIP_DEPTH_CT_MM = 10.0
#: At most this many leads (one per side).
MAX_LEADS = 2


# ---------------------------------------------------------------------------------------------------
# The plan


def read_plan(path) -> dict:
    """plan.json as written by ``dbs-plan plan``; a clear error for anything else."""
    path = Path(path)
    plan = read_json_document(path, "plan")
    if not isinstance(plan, dict) or "trajectories" not in plan or "acpc" not in plan:
        raise DBSInputError(f"{path} is not a plan written by `dbs-plan plan` (no trajectories or AC-PC landmarks)")
    try:
        for key in ("ac_ras", "pc_ras", "midline_ras"):
            np.asarray(plan["acpc"][key], float).reshape(3)
        for trajectory in plan["trajectories"]:
            if trajectory["side"] not in SIDES:
                raise ValueError(trajectory["side"])
            for key in ("target_ras", "entry_ras"):
                np.asarray(trajectory[key], float).reshape(3)
    except (KeyError, TypeError, ValueError) as error:
        raise DBSInputError(f"{path} is not a complete plan written by `dbs-plan plan` (bad or missing {error})") from None
    return plan


def acpc_from_plan(plan: dict) -> AcpcSpace:
    landmarks = plan["acpc"]
    return AcpcSpace.from_landmarks(landmarks["ac_ras"], landmarks["pc_ras"], landmarks["midline_ras"])


def planned_trajectories(plan: dict) -> dict:
    return {trajectory["side"]: trajectory for trajectory in plan["trajectories"]}


# ---------------------------------------------------------------------------------------------------
# Leads


def lead_in_mri_space(lead: DetectedLead, ct_to_mri: np.ndarray, source: str) -> dict:
    """A lead found on the CT, in MRI RAS (rotation for directions)."""
    rotation, shift = ct_to_mri[:3, :3], ct_to_mri[:3, 3]
    direction = rotation @ np.asarray(lead.direction_ras, float)
    return {
        "model": lead.model,
        "tip_ras": (rotation @ np.asarray(lead.tip_ras, float) + shift).tolist(),
        "direction_ras": (direction / np.linalg.norm(direction)).tolist(),
        "contact_centres_ras": (np.asarray(lead.contact_centres_ras, float) @ rotation.T + shift).tolist(),
        "axis_point_ras": (rotation @ np.asarray(lead.axis_point_ras, float) + shift).tolist(),
        "source": source,
        "length_in_brain_mm": float(lead.length_in_brain_mm),
        "fit_residual": float(lead.fit_residual),
    }


def side_of(point_ras, acpc: AcpcSpace) -> str:
    """The patient's side of a point: the sign of its AC-PC x (never an image axis)."""
    x = float(acpc.to_acpc(point_ras)[0])
    return "right" if x > 0 else "left"


def automatic_leads(ct, ct_to_mri: np.ndarray, metal_threshold_hu: float, model: str) -> list:
    """Leads found on the CT (cropped to the head first: the same result, less to search), in MRI RAS."""
    low, high = fusion_logic.head_box_ijk(ct)
    cropped = fusion_logic.crop(ct, low, high)
    try:
        found = localize_leads(cropped, metal_threshold_hu=metal_threshold_hu, model_name=model)
    except DBSInputError as error:
        if "no DBS lead found" in str(error):
            raise DBSInputError(f"{error} (--manual-lead SIDE TIP_R TIP_A TIP_S PT_R PT_A PT_S)") from None
        raise
    if len(found) > MAX_LEADS:
        raise DBSInputError(
            f"{len(found)} lead-like metal objects found in the CT, at most {MAX_LEADS} (one per side) expected; "
            "give each lead with --manual-lead SIDE TIP_R TIP_A TIP_S PT_R PT_A PT_S")
    return [lead_in_mri_space(lead, ct_to_mri, "automatic") for lead in found]


def manual_leads(specs: list, ct_to_mri: np.ndarray, space: str, model: str, acpc: AcpcSpace) -> list:
    """Leads given as SIDE and two points (tip, another point on the lead), in MRI or CT RAS."""
    leads, seen = [], set()
    for spec in specs:
        side = str(spec[0]).lower()
        if side not in SIDES:
            raise DBSInputError(f"--manual-lead: side must be left or right, got '{spec[0]}'")
        if side in seen:
            raise DBSInputError(f"--manual-lead given twice for the {side} side")
        seen.add(side)
        try:
            values = np.array([float(v) for v in spec[1:]])
        except ValueError:
            raise DBSInputError(f"--manual-lead {side}: the six coordinates must be numbers") from None
        if not np.all(np.isfinite(values)):
            raise DBSInputError(f"--manual-lead {side}: non-finite coordinate")
        tip, point = values[:3], values[3:]
        if space == "ct":
            tip, point = (ct_to_mri[:3, :3] @ p + ct_to_mri[:3, 3] for p in (tip, point))
        lead = lead_in_mri_space(lead_from_points(tip, point, model), np.eye(4), "manual")
        if not lead_direction_up(lead, acpc):
            raise DBSInputError(f"--manual-lead {side}: the second point lies below the tip; give the deep end of the "
                                "lead as the tip and a point higher up the lead second")
        found_side = side_of(lead["tip_ras"], acpc)
        if found_side != side:
            x = float(acpc.to_acpc(lead["tip_ras"])[0])
            raise DBSInputError(
                f"--manual-lead {side}: the tip lies in the {found_side} hemisphere (AC-PC x = {x:+.1f} mm): "
                "check the side and the coordinates")
        lead["side"] = side
        leads.append(lead)
    return sorted(leads, key=lambda lead: SIDES.index(lead["side"]))


def lead_direction_up(lead: dict, acpc: AcpcSpace) -> bool:
    """Whether the lead's direction points from the tip up (superior in AC-PC), as it must."""
    return float(acpc.vector_to_acpc(lead["direction_ras"])[2]) >= 0


def assign_sides(leads: list, acpc: AcpcSpace) -> list:
    """Side of each automatic lead by the AC-PC x of its tip; two on one side is refused."""
    for lead in leads:
        lead["side"] = side_of(lead["tip_ras"], acpc)
    for side in SIDES:
        on_side = [lead for lead in leads if lead["side"] == side]
        if len(on_side) > 1:
            raise DBSInputError(
                f"{len(on_side)} leads found in the {side} hemisphere (by AC-PC x); one per side expected: "
                "give the leads with --manual-lead")
    return sorted(leads, key=lambda lead: SIDES.index(lead["side"]))


def _depth_at(volume, depth_mm: np.ndarray, point_ras) -> float | None:
    """Depth map value at a point, or None outside the grid."""
    ijk = np.rint(volume.ras_to_ijk_points(point_ras)).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.array(volume.shape_ijk)):
        return None
    return float(depth_mm[ijk[2], ijk[1], ijk[0]])


def check_inside_brain(leads: list, mri, ct, ct_to_mri: np.ndarray) -> None:
    """Each tip must lie inside the MRI's field of view and head (or brain) outline (at least
    ``MIN_TIP_DEPTH_MRI_MM`` deep), and beneath the CT's scalp and skull (``MIN_TIP_DEPTH_CT_MM``)."""
    if not leads:
        return
    mri_depth = fusion_logic.depth_inside_mm(fusion_logic.mri_head_mask(mri), mri.spacing_mm, 1.0)
    ct_small = fusion_logic.downsample_ct(ct, 2.0)
    ct_depth = fusion_logic.depth_inside_mm(fusion_logic.ct_head_mask(ct_small), ct_small.spacing_mm, 2.0)
    mri_to_ct = np.linalg.inv(ct_to_mri)
    for lead in leads:
        tip = np.asarray(lead["tip_ras"], float)
        where = f"the {lead['side']} lead's tip (RAS {', '.join(f'{v:.1f}' for v in tip)})"
        hint = "check the fusion" if lead["source"] == "automatic" else "check the manual points"
        depth = _depth_at(mri, mri_depth, tip)
        if depth is None:
            raise DBSInputError(f"{where} lies outside the MRI's field of view, so outside the brain: {hint}")
        if depth < MIN_TIP_DEPTH_MRI_MM:
            raise DBSInputError(f"{where} lies outside the brain in the MRI ({depth:.0f} mm inside its head outline, "
                                f"at least {MIN_TIP_DEPTH_MRI_MM:.0f} mm expected): {hint}")
        depth = _depth_at(ct_small, ct_depth, mri_to_ct[:3, :3] @ tip + mri_to_ct[:3, 3])
        if depth is None or depth < MIN_TIP_DEPTH_CT_MM:
            found = "outside the CT" if depth is None else f"{depth:.0f} mm inside the CT's head outline"
            raise DBSInputError(f"{where} lies outside the brain in the CT ({found}, at least "
                                f"{MIN_TIP_DEPTH_CT_MM:.0f} mm beneath scalp and skull expected): {hint}")
