"""Synthetic post-operative CT for a planned case, with a known pose and known lead positions.

    python scripts/make_demo_postop_ct.py --plan PLAN.json [--mri IMG] --out-ct CT.nii.gz --out-truth TRUTH.json
        [--rotation-deg 12] [--translation-mm 15] [--offset-left R A S] [--offset-right R A S] [--seed 0]
        [--spacing 0.6] [--slice-thickness 1.0] [--size 384 384 180]
    python scripts/make_demo_postop_ct.py --check POSTOP/postop.json TRUTH.json

The CT is derived from the planning MRI itself, so it can be fused to it:

1. the MRI's head (or brain, for a skull-stripped MRI like the bundled CIT168 sample) is found by
   thresholding; inside it, T1 intensities are mapped to Hounsfield-like values (CSF ~8 HU, grey matter
   ~40 HU, white matter ~27 HU: the CT's grey/white contrast is the reverse of T1's);
2. around it: a thin CSF layer, a 6 mm skull (1200 HU), 5 mm of scalp (40 HU), then air (-1000 HU);
3. the result is resampled onto an axial CT grid (LPS-aligned, as CT scanners store it) placed under a
   known rigid pose relative to the MRI;
4. leads (``synthetic_ct``'s metal model: body and brighter contacts, partial volume, blooming, streaks)
   are drawn at each planned trajectory moved by a known offset and tilted by a known angle; noise.

The truth JSON gives ``ct_to_mri_ras`` (4x4, CT RAS -> MRI RAS), each lead's tip, direction and
contact centres in MRI RAS, and the placement errors the post-op command should report.

The intensities come from the MRI itself, so fusing this CT back to that MRI is easier than fusing a
real CT: the demo checks geometry, sides and the pipeline, not real-world fusion accuracy.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from DBSSegmentationLogic.geometry.acpc import AcpcSpace  # noqa: E402
from DBSSegmentationLogic.geometry.frame import FrameSpace  # noqa: E402
from DBSSegmentationLogic.geometry.placement_error import placement_error  # noqa: E402
from DBSSegmentationLogic.geometry.trajectory import Trajectory  # noqa: E402
from DBSSegmentationLogic.io.staged_output import write_json_atomic  # noqa: E402
from DBSSegmentationLogic.io.volumes import (  # noqa: E402
    Volume,
    read_volume,
    volume_to_sitk,
    write_volume,
)
from DBSSegmentationLogic.postop.leads import DEFAULT_LEAD, LEAD_MODELS  # noqa: E402
from DBSSegmentationLogic.simulation.synthetic_ct import (  # noqa: E402
    CT_MAX_HU,
    lead_intensity,
    streaks,
)

#: T1 intensity (as a fraction of the brain's 99th percentile) -> HU inside the head.
T1_FRACTIONS = [0.0, 0.18, 0.40, 0.60, 0.85, 1.2]
T1_HU = [5.0, 8.0, 25.0, 40.0, 27.0, 30.0]
CSF_LAYER_MM, SKULL_MM, SCALP_MM = 1.5, 6.0, 5.0
SKULL_HU, SCALP_HU, AIR_HU = 1200.0, 40.0, -1000.0
PAD_MM = 20.0
CLOSING_MM = 10.0
CUPPING_HU, FIELD_HU = 8.0, 3.0
DEFAULT_OFFSETS = {"left": (1.2, -0.8, 1.5), "right": (-0.9, 1.1, -1.3)}
DEFAULT_TILT_DEG = {"left": 2.0, "right": 3.0}


def head_ct_model(mri: Volume, seed: int = 0) -> Volume:
    """A CT-like image (HU) of the MRI's head on a 1 mm grid in the MRI's axes, padded for the skull."""
    values = mri.array.astype(np.float32)
    smooth = ndimage.gaussian_filter(values, 1.0)
    high = float(np.percentile(values[values > 0], 99)) if np.any(values > 0) else 1.0
    mask = smooth > 0.06 * high
    labels, count = ndimage.label(mask)
    if count == 0:
        raise SystemExit("the MRI has no foreground")
    sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    mask = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    hu = np.interp(values / high, T1_FRACTIONS, T1_HU).astype(np.float32)
    # Pad the MRI grid so the skull and scalp fit; work on (about) 1 mm voxels.
    spacing = mri.spacing_mm
    pad = np.ceil(PAD_MM / spacing).astype(int)[::-1]  # k, j, i
    mask_padded = np.pad(mask, [(p, p) for p in pad])
    hu_padded = np.pad(np.where(mask, hu, 0.0), [(p, p) for p in pad])
    # The intracranial space: the brain closed by a 10 mm ball (sulci and fissures hold CSF, not bone).
    sampling = spacing[::-1]
    dilated = ndimage.distance_transform_edt(~mask_padded, sampling=sampling) <= CLOSING_MM
    intracranial = ndimage.distance_transform_edt(dilated, sampling=sampling) > CLOSING_MM
    intracranial |= mask_padded
    outside_mm = ndimage.distance_transform_edt(~intracranial, sampling=sampling).astype(np.float32)
    image = np.full(mask_padded.shape, AIR_HU, np.float32)
    image[outside_mm <= CSF_LAYER_MM + SKULL_MM + SCALP_MM] = SCALP_HU
    image[outside_mm <= CSF_LAYER_MM + SKULL_MM] = SKULL_HU
    image[outside_mm <= CSF_LAYER_MM] = 8.0
    image[intracranial] = 8.0
    image[mask_padded] = hu_padded[mask_padded]
    # What a CT shows and a T1 does not: beam hardening (cupping: brain brighter near the skull) and a
    # smooth scanner-dependent offset field, so the CT is not a mere relabelling of the MRI.
    depth_mm = ndimage.distance_transform_edt(intracranial, sampling=sampling).astype(np.float32)
    image[intracranial] += CUPPING_HU * np.exp(-depth_mm[intracranial] / 12.0)
    field = ndimage.gaussian_filter(np.random.default_rng(seed).normal(0, 1, image.shape).astype(np.float32), 12.0)
    field *= FIELD_HU / max(float(field.std()), 1e-6)
    image[intracranial] += field[intracranial]
    image = ndimage.gaussian_filter(image, 0.6 / spacing[::-1])
    ijk_to_ras = mri.ijk_to_ras.copy()
    ijk_to_ras[:3, 3] = mri.ijk_to_ras_points(-pad[::-1].astype(float))
    return Volume(image, ijk_to_ras)


def rotation_about(axis, angle_deg: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.array(sitk.VersorTransform(tuple(axis), math.radians(angle_deg)).GetMatrix()).reshape(3, 3)


def random_pose(rng, rotation_deg: float, translation_mm: float, centre_ras) -> np.ndarray:
    """CT RAS -> MRI RAS: a rotation of exactly ``rotation_deg`` about a random axis through
    ``centre_ras`` and a translation of exactly ``translation_mm`` in a random direction."""
    axis = rng.normal(size=3)
    shift = rng.normal(size=3)
    rotation = rotation_about(axis, rotation_deg)
    pose = np.eye(4)
    pose[:3, :3] = rotation
    centre = np.asarray(centre_ras, float)
    pose[:3, 3] = centre - rotation @ centre + translation_mm * shift / np.linalg.norm(shift)
    return pose


def planned_leads(plan: dict, offsets: dict, tilts_deg: dict, model: str = DEFAULT_LEAD) -> list:
    """True leads in MRI RAS: each planned trajectory, its tip moved by ``offsets[side]`` and its axis
    tilted by ``tilts_deg[side]`` about the axis perpendicular to the trajectory and to S."""
    leads = []
    for trajectory in plan["trajectories"]:
        side = trajectory["side"]
        target, entry = np.array(trajectory["target_ras"]), np.array(trajectory["entry_ras"])
        up = (entry - target) / np.linalg.norm(entry - target)  # tip -> entry
        hinge = np.cross(up, [0.0, 0.0, 1.0])
        hinge = hinge / np.linalg.norm(hinge) if np.linalg.norm(hinge) > 1e-6 else np.array([1.0, 0.0, 0.0])
        direction = rotation_about(hinge, tilts_deg.get(side, 0.0)) @ up
        tip = target + np.asarray(offsets.get(side, (0.0, 0.0, 0.0)), float)
        contacts = tip + np.outer(LEAD_MODELS[model].contact_centres_from_tip_mm(), direction)
        leads.append({"side": side, "model": model, "tip_ras": tip, "direction_ras": direction,
                      "contact_centres_ras": contacts})
    return leads


def _ct_grid(head_centre_ct, shape_ijk, spacing_in_plane: float, slice_mm: float) -> np.ndarray:
    """ijk -> RAS of an axial CT grid stored as scanners do (LPS-aligned: i to the left, j posterior)."""
    spacing = np.array([spacing_in_plane, spacing_in_plane, slice_mm])
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = np.diag([-1.0, -1.0, 1.0]) * spacing
    centre_index = (np.array(shape_ijk) - 1) / 2.0
    ijk_to_ras[:3, 3] = np.asarray(head_centre_ct, float) - ijk_to_ras[:3, :3] @ centre_index
    return ijk_to_ras


def _resample_model(model: Volume, ijk_to_ras_ct: np.ndarray, shape_ijk, ct_to_mri: np.ndarray) -> np.ndarray:
    reference = sitk.Image([int(s) for s in shape_ijk], sitk.sitkFloat32)
    grid = volume_to_sitk(Volume(np.zeros((1, 1, 1), np.float32), ijk_to_ras_ct))
    reference.SetOrigin(grid.GetOrigin())
    reference.SetSpacing(grid.GetSpacing())
    reference.SetDirection(grid.GetDirection())
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    ct_to_mri_lps = flip @ ct_to_mri @ flip  # maps output (CT) LPS points to input (MRI model) LPS points
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in ct_to_mri_lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in ct_to_mri_lps[:3, 3]])
    resampled = sitk.Resample(volume_to_sitk(model), reference, transform, sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def _exit_length_mm(model: Volume, tip_mri, direction_mri) -> float:
    """Distance from the tip to where the lead leaves the head (plus 5 mm), along the lead."""
    steps = np.arange(0.0, 200.0, 0.5)
    points = np.asarray(tip_mri) + steps[:, None] * np.asarray(direction_mri)
    ijk = model.ras_to_ijk_points(points)
    values = ndimage.map_coordinates(model.array, ijk[:, ::-1].T, order=1, cval=AIR_HU)
    outside = np.nonzero(values < -500)[0]
    return float(steps[outside[0]] + 5.0) if len(outside) else 200.0


def _draw_lead(image: np.ndarray, ijk_to_ras: np.ndarray, tip_ct, direction_ct, model_name: str,
               length_mm: float, blooming_mm: float = 0.6, sub_slices: int = 2) -> None:
    """Add one lead's metal to ``image`` (CT grid, k j i) in place: partial volume over 3x3 in-plane
    and ``sub_slices`` x 3 through-slice sub-samples, blooming, averaged over the slice thickness."""
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    ends = np.array([tip_ct - 3.0 * direction_ct, tip_ct + length_mm * direction_ct])
    inverse = np.linalg.inv(ijk_to_ras)
    ends_ijk = ends @ inverse[:3, :3].T + inverse[:3, 3]
    margin = 4.0 / spacing
    low = np.maximum(np.floor(ends_ijk.min(0) - margin).astype(int), 0)
    high = np.minimum(np.ceil(ends_ijk.max(0) + margin).astype(int) + 1, np.array(image.shape[::-1]))
    if np.any(high <= low):
        return
    # Sub-slice grid: ``sub_slices`` planes per slice (the slice thickness is their average).
    fine_k = (np.arange(low[2] * sub_slices, high[2] * sub_slices) + 0.5) / sub_slices - 0.5
    jj, ii = np.arange(low[1], high[1]), np.arange(low[0], high[0])
    k, j, i = np.meshgrid(fine_k, jj, ii, indexing="ij")
    ijk = np.stack([i, j, k], -1).astype(np.float32)
    points = ijk @ ijk_to_ras[:3, :3].T.astype(np.float32) + ijk_to_ras[:3, 3].astype(np.float32)
    near = np.linalg.norm(np.cross(points - tip_ct.astype(np.float32), direction_ct.astype(np.float32)), axis=-1) <= 3.0
    steps = spacing * np.array([1.0, 1.0, 1.0 / sub_slices])
    offsets = np.array(np.meshgrid(*[np.array([-1, 0, 1]) / 3.0] * 3, indexing="ij")).reshape(3, -1).T
    metal = np.zeros(k.shape, np.float32)
    near_points = points[near]
    for offset in offsets:
        shift = (ijk_to_ras[:3, :3] @ (offset * np.array([1.0, 1.0, 1.0 / sub_slices]))).astype(np.float32)
        metal[near] += lead_intensity(near_points + shift, tip_ct, direction_ct, model_name, length_mm)
    metal /= len(offsets)
    sigma = blooming_mm / steps[::-1]
    metal = ndimage.gaussian_filter(metal, sigma)
    metal = metal.reshape(-1, sub_slices, *metal.shape[1:]).mean(axis=1)
    image[low[2]:high[2], low[1]:high[1], low[0]:high[0]] += metal


def make_ct_from_mri(
    mri: Volume,
    leads_mri: list,
    ct_to_mri: np.ndarray,
    shape_ijk=(384, 384, 180),
    spacing_mm: float = 0.6,
    slice_thickness_mm: float = 1.0,
    noise_hu: float = 12.0,
    streak_hu: float = 250.0,
    seed: int = 0,
    model: Volume | None = None,
) -> Volume:
    """The post-op CT (int16 HU) on an axial grid, such that CT RAS ``x`` lies at MRI RAS ``ct_to_mri @ x``."""
    rng = np.random.default_rng(seed)
    model = head_ct_model(mri, seed) if model is None else model
    mri_to_ct = np.linalg.inv(ct_to_mri)
    brain_centre = model.ijk_to_ras_points((np.array(model.shape_ijk) - 1) / 2.0)
    centre_ct = mri_to_ct[:3, :3] @ brain_centre + mri_to_ct[:3, 3]
    ijk_to_ras = _ct_grid(centre_ct, shape_ijk, spacing_mm, slice_thickness_mm)
    image = _resample_model(model, ijk_to_ras, shape_ijk, ct_to_mri)
    for lead in leads_mri:
        tip_ct = mri_to_ct[:3, :3] @ lead["tip_ras"] + mri_to_ct[:3, 3]
        direction_ct = mri_to_ct[:3, :3] @ lead["direction_ras"]
        length = _exit_length_mm(model, lead["tip_ras"], lead["direction_ras"])
        _draw_lead(image, ijk_to_ras, tip_ct, direction_ct, lead["model"], length)
        if streak_hu > 0:
            _add_streaks(image, ijk_to_ras, tip_ct, direction_ct, streak_hu, rng)
    image += rng.normal(0.0, noise_hu, image.shape).astype(np.float32)
    np.clip(image, -1024.0, CT_MAX_HU, out=image)
    return Volume(np.round(image).astype(np.int16), ijk_to_ras)


def _add_streaks(image, ijk_to_ras, tip_ct, direction_ct, amplitude_hu, rng, half_width_mm: float = 60.0) -> None:
    """Streaks in the axial slices above the tip, within ``half_width_mm`` of the lead."""
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    inverse = np.linalg.inv(ijk_to_ras)
    tip_ijk = inverse[:3, :3] @ tip_ct + inverse[:3, 3]
    k_low = max(0, int(np.floor(tip_ijk[2] - 3.0 / spacing[2])))
    far = tip_ct + 120.0 * direction_ct
    far_ijk = inverse[:3, :3] @ far + inverse[:3, 3]
    centre_i = np.array([tip_ijk[0], far_ijk[0]])
    centre_j = np.array([tip_ijk[1], far_ijk[1]])
    half = half_width_mm / spacing[0]
    i_low, i_high = max(0, int(centre_i.min() - half)), min(image.shape[2], int(centre_i.max() + half))
    j_low, j_high = max(0, int(centre_j.min() - half)), min(image.shape[1], int(centre_j.max() + half))
    k_high = image.shape[0]
    if k_low >= k_high or i_low >= i_high or j_low >= j_high:
        return
    k, j, i = np.meshgrid(np.arange(k_low, k_high), np.arange(j_low, j_high), np.arange(i_low, i_high), indexing="ij")
    points = np.stack([i, j, k], -1).astype(np.float32) @ ijk_to_ras[:3, :3].T.astype(np.float32) \
        + ijk_to_ras[:3, 3].astype(np.float32)
    bands = streaks(points, np.asarray(tip_ct, float), np.asarray(direction_ct, float), amplitude_hu, rng)
    image[k_low:k_high, j_low:j_high, i_low:i_high] += bands


def truth_document(plan: dict, leads_mri: list, ct_to_mri: np.ndarray, rotation_deg: float, translation_mm: float,
                   offsets: dict, tilts_deg: dict) -> dict:
    """The truth JSON: pose, leads (MRI RAS) and the errors the post-op command should report."""
    acpc_data = plan["acpc"]
    acpc = AcpcSpace.from_landmarks(acpc_data["ac_ras"], acpc_data["pc_ras"], acpc_data["midline_ras"])
    frame = FrameSpace.virtual(acpc) if str(plan.get("frame", "")).startswith("virtual") else None
    errors = {}
    for lead in leads_mri:
        planned = next(t for t in plan["trajectories"] if t["side"] == lead["side"])
        error = placement_error(Trajectory(planned["entry_ras"], planned["target_ras"]), lead["tip_ras"],
                                lead["direction_ras"], lead["tip_ras"], acpc, frame)
        errors[lead["side"]] = error.to_dict()
    return {
        "format": "dbs-postop-truth/1",
        "ct_to_mri_ras": ct_to_mri.tolist(),
        "rotation_deg": rotation_deg,
        "translation_mm": translation_mm,
        "offsets_ras_mm": {side: list(map(float, value)) for side, value in offsets.items()},
        "tilts_deg": tilts_deg,
        "leads": [{"side": lead["side"], "model": lead["model"], "tip_ras": lead["tip_ras"].tolist(),
                   "direction_ras": lead["direction_ras"].tolist(),
                   "contact_centres_ras": lead["contact_centres_ras"].tolist()} for lead in leads_mri],
        "expected_errors": errors,
    }


def resolve_mri(plan: dict, plan_path: Path, mri_option) -> Path:
    if mri_option:
        return Path(mri_option)
    recorded = Path(plan.get("mri", ""))
    for candidate in (recorded, plan_path.parent / recorded, REPO_ROOT / recorded):
        if str(recorded) and candidate.is_file():
            return candidate
    raise SystemExit("give --mri: the MRI recorded in the plan was not found")


def check(postop_path: Path, truth_path: Path, tolerance_mm: float = 0.5) -> int:
    """Compare a postop.json with the truth: per side, tip distance and error differences. 0 if all within
    ``tolerance_mm`` (1° for the angle) and the sides match, else 1."""
    result = json.loads(postop_path.read_text(encoding="utf-8"))
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    ok = sorted(lead["side"] for lead in result["leads"]) == sorted(lead["side"] for lead in truth["leads"])
    for lead in truth["leads"]:
        side = lead["side"]
        found = next((item for item in result["leads"] if item["side"] == side), None)
        if found is None or side not in result["errors"]:
            print(f"{side}: not found")
            ok = False
            continue
        tip_mm = float(np.linalg.norm(np.subtract(found["tip_ras"], lead["tip_ras"])))
        reported, expected = result["errors"][side], truth["expected_errors"][side]
        differences = {key: abs(reported[key] - expected[key])
                       for key in ("euclidean_mm", "depth_mm", "radial_mm", "angular_deg")}
        axis_mm = float(np.max(np.abs(np.subtract(reported["ras_mm"], expected["ras_mm"]))))
        side_ok = (tip_mm <= tolerance_mm and axis_mm <= tolerance_mm and differences["angular_deg"] <= 1.0
                   and all(value <= tolerance_mm for key, value in differences.items() if key != "angular_deg"))
        ok &= side_ok
        print(f"{side}: tip {tip_mm:.2f} mm from the truth; reported - true: Euclidean "
              f"{reported['euclidean_mm'] - expected['euclidean_mm']:+.2f} mm, depth {reported['depth_mm'] - expected['depth_mm']:+.2f} mm, "
              f"radial {reported['radial_mm'] - expected['radial_mm']:+.2f} mm, angle "
              f"{reported['angular_deg'] - expected['angular_deg']:+.2f}°, worst RAS axis {axis_mm:.2f} mm "
              f"-> {'ok' if side_ok else 'OFF'}")
    print("post-op result matches the truth" if ok else "post-op result does NOT match the truth")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, help="plan.json written by `dbs-plan plan` (required to make a CT)")
    parser.add_argument("--mri", type=Path, help="planning MRI (default: the one recorded in the plan)")
    parser.add_argument("--out-ct", type=Path, help="CT to write (.nii.gz, .nii, .nrrd, .mha)")
    parser.add_argument("--out-truth", type=Path, help="truth JSON to write")
    parser.add_argument("--check", nargs=2, type=Path, metavar=("POSTOP_JSON", "TRUTH_JSON"),
                        help="instead: compare a postop.json with a truth JSON (exit 1 when off by more than 0.5 mm)")
    parser.add_argument("--rotation-deg", type=float, default=12.0, help="head rotation in the CT (default 12°)")
    parser.add_argument("--translation-mm", type=float, default=15.0, help="head translation in the CT (default 15 mm)")
    parser.add_argument("--offset-left", nargs=3, type=float, default=DEFAULT_OFFSETS["left"], metavar=("R", "A", "S"))
    parser.add_argument("--offset-right", nargs=3, type=float, default=DEFAULT_OFFSETS["right"], metavar=("R", "A", "S"))
    parser.add_argument("--tilt-left", type=float, default=DEFAULT_TILT_DEG["left"], help="lead tilt, degrees")
    parser.add_argument("--tilt-right", type=float, default=DEFAULT_TILT_DEG["right"], help="lead tilt, degrees")
    parser.add_argument("--lead-model", default=DEFAULT_LEAD, choices=sorted(LEAD_MODELS))
    parser.add_argument("--spacing", type=float, default=0.6, help="in-plane spacing mm (default 0.6)")
    parser.add_argument("--slice-thickness", type=float, default=1.0, help="slice thickness mm (default 1)")
    parser.add_argument("--size", nargs=3, type=int, default=(384, 384, 180), metavar=("I", "J", "K"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.check:
        return check(*args.check)
    if not (args.plan and args.out_ct and args.out_truth):
        parser.error("give --plan, --out-ct and --out-truth (or --check POSTOP_JSON TRUTH_JSON)")

    started = time.perf_counter()
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    mri = read_volume(resolve_mri(plan, args.plan, args.mri))
    rng = np.random.default_rng(args.seed)
    centre = np.array(plan["acpc"]["mcp_ras"])
    ct_to_mri = random_pose(rng, args.rotation_deg, args.translation_mm, centre)
    offsets = {"left": tuple(args.offset_left), "right": tuple(args.offset_right)}
    tilts = {"left": args.tilt_left, "right": args.tilt_right}
    leads = planned_leads(plan, offsets, tilts, args.lead_model)
    ct = make_ct_from_mri(mri, leads, ct_to_mri, tuple(args.size), args.spacing, args.slice_thickness, seed=args.seed)
    write_volume(ct, args.out_ct)
    write_json_atomic(args.out_truth, truth_document(plan, leads, ct_to_mri, args.rotation_deg, args.translation_mm,
                                                    offsets, tilts))
    print(f"CT {ct.array.shape[::-1]} written to {args.out_ct}; truth in {args.out_truth} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
