"""``postop`` subcommand: post-operative CT -> fusion to the planning MRI -> leads -> errors against the plan.

    dbs-plan postop --plan PLAN.json --ct CT [--mri IMG] [--preop-ct CT [--preop-transform FILE]]
                    [--transform FILE [--transform-file-maps mri-to-ct|ct-to-mri]]
                    [--metal-threshold HU] [--lead-model NAME]
                    [--manual-lead SIDE TIP_R TIP_A TIP_S PT_R PT_A PT_S]... [--manual-space mri|ct]
                    [--image-to-frame FILE] --out DIR

Writes ``postop.json`` (format ``dbs-postop/1``; every RAS coordinate in the planning MRI's space),
``report.md``, figures (fusion quality; planned trajectory versus actual lead on the MRI and the CT),
``ct_to_mri.tfm`` (the fusion, as Slicer saves a transform node that moves the CT onto the MRI) and
``postop_points.mrk.json`` (tips and contacts). Everything is written to a temporary folder beside DIR
and moved in only when the whole run succeeded, so a failed run leaves an earlier result untouched.

Prints ``PROGRESS <fraction> <step>`` lines. Exit codes: 0 ok, 2 bad input (one line on stderr),
3 internal failure, 130 cancelled (SIGINT/SIGTERM).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..geometry.acpc import AcpcSpace
from ..geometry.frame import TRANSFORM_FILE_CONVENTIONS as FRAME_FILE_CONVENTIONS
from ..geometry.frame import FrameSpace, read_image_to_frame_transform
from ..geometry.placement_error import placement_error
from ..geometry.trajectory import Trajectory
from ..io.exceptions import DBSInputError
from ..io.input_checks import check_output_destinations
from ..io.markups import write_markups_points
from ..io.staged_output import staged_output_folder, write_json_atomic
from ..io.volumes import read_checked_volume
from ..postop import fusion as fusion_logic
from ..postop.electrodes import (
    DEFAULT_METAL_THRESHOLD_HU,
    check_is_ct,
)
from ..postop.evaluation import (
    acpc_from_plan,
    assign_sides,
    automatic_leads,
    check_inside_brain,
    manual_leads,
    planned_trajectories,
    read_plan,
)
from ..postop.leads import DEFAULT_LEAD, LEAD_MODELS
from .options import progress

try:  # Unix only: Windows has no `resource`, and every command must still run there
    import resource
except ImportError:  # pragma: no cover - exercised by a test that hides the module
    resource = None

FORMAT = "dbs-postop/1"


def peak_memory_mb():
    """Peak resident memory of this process in MB, or None where the platform cannot tell (Windows).
    ``ru_maxrss`` is in kilobytes on Linux and in bytes on macOS."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)


# ---------------------------------------------------------------------------------------------------
# Inputs


def resolve_mri_path(plan: dict, plan_path: Path, mri_option) -> Path:
    """--mri, else the MRI recorded in the plan (as given, or relative to the plan's folder)."""
    if mri_option:
        return Path(mri_option)
    recorded = plan.get("mri")
    if not recorded:
        raise DBSInputError("the plan records no MRI: give --mri")
    recorded = Path(recorded)
    for candidate in (recorded, Path(plan_path).parent / recorded):
        if candidate.exists():
            return candidate
    raise DBSInputError(f"the plan's MRI {recorded} was not found (relative to here or to the plan): give --mri")


def frame_from_plan(plan: dict, acpc: AcpcSpace, args, warnings: list):
    """The plan's frame: the virtual frame, a matrix recorded in the plan, or --image-to-frame; else None."""
    if args.image_to_frame:
        return read_image_to_frame_transform(args.image_to_frame, args.frame_transform_file_maps)
    if "image_to_frame_ras" in plan:
        return FrameSpace.from_matrix(plan["image_to_frame_ras"], plan.get("frame", "image-to-frame matrix"))
    if str(plan.get("frame", "virtual")).startswith("virtual"):
        return FrameSpace.virtual(acpc)
    warnings.append(f"the plan used a frame ({plan.get('frame')}) whose transform plan.json does not record: "
                    "give --image-to-frame for errors in frame axes")
    return None


# ---------------------------------------------------------------------------------------------------
# The command


def _fusion(args, mri, ct, warnings: list) -> fusion_logic.Fusion:
    step = lambda start, span: (lambda fraction, message: progress(start + span * fraction, message))  # noqa: E731
    if args.transform:
        if args.preop_ct:
            warnings.append("--transform given: --preop-ct was not used")
        return fusion_logic.user_fusion(mri, ct, args.transform, args.transform_file_maps)
    if args.preop_ct:
        progress(0.12, "reading the pre-operative CT")
        preop = read_checked_volume(args.preop_ct, "ct", f"the pre-operative CT {args.preop_ct}")
        check_is_ct(preop)
        progress(0.15, "fusing the post-operative CT to the pre-operative CT")
        postop_to_preop = fusion_logic.fuse_ct_to_ct(preop, ct, args.metal_threshold, step(0.15, 0.2))
        if args.preop_transform:
            preop_to_mri = fusion_logic.user_fusion(mri, preop, args.preop_transform, args.transform_file_maps)
        else:
            progress(0.35, "fusing the pre-operative CT to the MRI")
            preop_to_mri = fusion_logic.fuse_ct_to_mri(mri, preop, args.metal_threshold, step(0.35, 0.2))
        return fusion_logic.chain(postop_to_preop, preop_to_mri, mri, ct)
    if args.preop_transform:
        raise DBSInputError("--preop-transform needs --preop-ct")
    progress(0.12, "fusing the CT to the MRI")
    return fusion_logic.fuse_ct_to_mri(mri, ct, args.metal_threshold, step(0.12, 0.43))


def run_postop(args) -> int:
    started = time.perf_counter()
    timings = {}
    out = Path(args.out)
    if args.lead_model not in LEAD_MODELS:
        raise DBSInputError(f"unknown lead model '{args.lead_model}': use one of {', '.join(LEAD_MODELS)}")
    # Before any computation: the output folder can be written (exit 2, one line).
    check_output_destinations(folders=[out], inputs=[args.plan, args.ct, args.mri, args.preop_ct])
    progress(0.02, "reading the plan")
    plan = read_plan(args.plan)
    acpc = acpc_from_plan(plan)
    warnings: list = []
    frame = frame_from_plan(plan, acpc, args, warnings)
    trajectories = planned_trajectories(plan)
    mri_path = resolve_mri_path(plan, Path(args.plan), args.mri)
    progress(0.04, "reading the MRI and the CT")
    mri = read_checked_volume(mri_path, "planning", f"the MRI {mri_path}")
    ct = read_checked_volume(args.ct, "ct", f"the CT {args.ct}")
    check_is_ct(ct)
    timings["reading"] = time.perf_counter() - started

    fusion = _fusion(args, mri, ct, warnings)
    timings["fusion"] = fusion.seconds
    ct_to_mri = fusion.ct_to_mri_ras

    progress(0.58, "locating the leads" if not args.manual_lead else "placing the manual leads")
    located = time.perf_counter()
    if args.manual_lead:
        leads = manual_leads(args.manual_lead, ct_to_mri, args.manual_space, args.lead_model, acpc)
    else:
        leads = assign_sides(automatic_leads(ct, ct_to_mri, args.metal_threshold, args.lead_model), acpc)
    timings["localization"] = time.perf_counter() - located
    check_inside_brain(leads, mri, ct, ct_to_mri)

    progress(0.75, "computing the errors against the plan")
    errors = {}
    for lead in leads:
        side = lead["side"]
        trajectory = trajectories.get(side)
        if trajectory is None:
            reason = plan.get("failures", {}).get(side)
            warnings.append(f"a lead was found in the {side} hemisphere but the plan has no {side} trajectory"
                            + (f" ({side} side not planned: {reason})" if reason else "") + ": no error computed")
            continue
        planned = Trajectory(trajectory["entry_ras"], trajectory["target_ras"])
        errors[side] = placement_error(planned, lead["tip_ras"], lead["direction_ras"], lead["axis_point_ras"],
                                       acpc, frame).to_dict()
    for side in trajectories:
        if side not in {lead["side"] for lead in leads}:
            warnings.append(f"no lead found in the {side} hemisphere, which was planned ({trajectories[side]['name']})")

    result = {
        "format": FORMAT,
        "plan": str(args.plan),
        "ct": str(args.ct),
        "mri": str(mri_path),
        "preop_ct": str(args.preop_ct) if args.preop_ct else None,
        "coordinate_system": "RAS mm of the planning MRI; AC-PC x right, y anterior, z superior; "
                             "frame errors along Leksell X, Y, Z",
        "fusion": fusion.to_dict(),
        "lead_model": args.lead_model,
        "metal_threshold_hu": args.metal_threshold,
        "leads": leads,
        "errors": errors,
        "warnings": warnings,
    }

    from ..postop import report as postop_report

    with staged_output_folder(out) as staging:
        progress(0.80, "drawing figures")
        drawn = time.perf_counter()
        centre = (trajectories[leads[0]["side"]]["target_ras"] if leads and leads[0]["side"] in trajectories
                  else next(iter(trajectories.values()))["target_ras"] if trajectories else acpc.mcp_ras)
        figures = {"fusion quality": postop_report.fusion_figure(
            mri, ct, ct_to_mri, acpc, centre, leads, staging / "fusion_quality.png", args.metal_threshold)}
        for lead in leads:
            trajectory = trajectories.get(lead["side"])
            if trajectory is not None:
                name = trajectory["name"].replace(" ", "_")
                figures[f"{trajectory['name']} planned vs actual"] = postop_report.trajectory_figure(
                    mri, ct, ct_to_mri, acpc, trajectory, lead, errors.get(lead["side"]), staging / f"lead_{name}.png")
        timings["figures"] = time.perf_counter() - drawn
        fusion_logic.write_ct_to_mri_transform(ct_to_mri, staging / "ct_to_mri.tfm", "mri-to-ct")
        points = {}
        for lead in leads:
            prefix = f"{lead['side'][0].upper()} lead"
            points[f"{prefix} tip"] = lead["tip_ras"]
            for index, contact in enumerate(lead["contact_centres_ras"]):
                points[f"{prefix} contact {index}"] = contact
        if points:
            write_markups_points(staging / "postop_points.mrk.json", points)
        timings["total"] = time.perf_counter() - started
        result["timings_s"] = {name: round(value, 2) for name, value in timings.items()}
        result["peak_memory_mb"] = peak_memory_mb()
        write_json_atomic(staging / "postop.json", result)
        (staging / "report.md").write_text(postop_report.markdown_report(result, figures, acpc, trajectories),
                                           encoding="utf-8")
    progress(1.00, "done")
    print(f"Fusion: {fusion.method}; overlap {100 * fusion.overlap:.0f}%; {fusion.seconds:.1f} s")
    for lead in leads:
        error = errors.get(lead["side"])
        tip = ", ".join(f"{v:.1f}" for v in lead["tip_ras"])
        if error:
            at_plane = error["radial_at_target_plane_mm"]
            print(f"{lead['side'].upper()} lead ({lead['source']}): tip RAS {tip}; Euclidean {error['euclidean_mm']:.2f} mm, "
                  f"depth {error['depth_mm']:+.2f} mm, radial {error['radial_mm']:.2f} mm, at target plane "
                  f"{'n/a' if at_plane is None else f'{at_plane:.2f} mm'}, angle {error['angular_deg']:.1f}°")
        else:
            print(f"{lead['side'].upper()} lead ({lead['source']}): tip RAS {tip}; no plan on this side")
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"Report: {out / 'report.md'}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "postop", help="fuse the post-operative CT, locate the leads, measure the error against the plan",
        description="Fuse the post-operative CT to the planning MRI (mutual information, metal excluded; or through "
        "a pre-operative CT; or with a given transform), locate each lead's axis, tip and contacts, assign sides by "
        "AC-PC x and report the placement errors against plan.json (Euclidean, depth, radial, radial at the target "
        "plane, angular, per axis in RAS, AC-PC and frame axes). All coordinates are RAS mm of the planning MRI.",
    )
    parser.add_argument("--plan", required=True, type=Path, help="plan.json written by `dbs-plan plan`")
    parser.add_argument("--ct", required=True, type=Path, help="post-operative CT (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("--mri", type=Path, help="planning MRI (default: the one recorded in the plan)")
    parser.add_argument("--preop-ct", type=Path, help="pre-operative CT: the post-op CT is fused to it (CT-CT), "
                        "and it to the MRI (or by --preop-transform)")
    parser.add_argument("--preop-transform", type=Path, help="transform file between the pre-operative CT and the "
                        "MRI (same convention as --transform)")
    parser.add_argument("--transform", type=Path, help="rigid ITK transform file (.tfm/.h5/.txt) between the CT and "
                        "the MRI: replaces the automatic fusion")
    parser.add_argument("--transform-file-maps", choices=fusion_logic.TRANSFORM_FILE_CONVENTIONS, default="mri-to-ct",
                        help="what the transform file maps: 'mri-to-ct' (default; as Slicer saves a transform node "
                        "under which the CT is moved onto the MRI, and as ITK registrations of CT to MRI write it) or "
                        "'ct-to-mri'")
    parser.add_argument("--metal-threshold", type=float, default=DEFAULT_METAL_THRESHOLD_HU, metavar="HU",
                        help=f"metal threshold (default {DEFAULT_METAL_THRESHOLD_HU:g} HU)")
    parser.add_argument("--lead-model", default=DEFAULT_LEAD, choices=sorted(LEAD_MODELS),
                        help=f"implanted lead model (default {DEFAULT_LEAD})")
    parser.add_argument("--manual-lead", action="append", nargs=7, default=[],
                        metavar=("SIDE", "TIP_R", "TIP_A", "TIP_S", "PT_R", "PT_A", "PT_S"),
                        help="fallback when detection fails: a lead by its side, tip and one more point on it (RAS mm); "
                        "repeat per side; replaces automatic detection")
    parser.add_argument("--manual-space", choices=("mri", "ct"), default="mri",
                        help="space of the --manual-lead points: 'mri' (default; Slicer's coordinates with the CT fused "
                        "to the MRI) or 'ct' (picked on the CT as loaded)")
    parser.add_argument("--image-to-frame", type=Path, help="the plan's image-to-frame transform, when the plan used a "
                        "real frame registration (plan.json does not record it)")
    parser.add_argument("--frame-transform-file-maps", choices=FRAME_FILE_CONVENTIONS, default="frame-to-image")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(handler=run_postop)
