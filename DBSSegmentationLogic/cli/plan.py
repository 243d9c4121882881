"""``plan`` subcommand: from an MRI (and optionally its label map) to the complete plan.

    dbs-plan plan --mri IMG [--labels LBL] [--ac … --pc … --midline … | --markups F.mrk.json]
                  [--target stn|psa|gpi] [--mounting …] [--image-to-frame F] --out DIR

Writes ``plan.json``, ``report.md`` and figures into DIR. Every file is first written into a
temporary folder beside DIR and moved in only when the whole plan succeeded, so a failed run never
leaves a half plan or spoils an earlier one.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..geometry.acpc import AcpcSpace
from ..geometry.frame import (
    MOUNTINGS,
    TRANSFORM_FILE_CONVENTIONS,
    read_image_to_frame_transform,
)
from ..io.exceptions import DBSInputError
from ..io.input_checks import check_output_destinations
from ..io.markups import write_markups_points
from ..io.staged_output import staged_output_folder, write_json_atomic
from ..io.volumes import read_checked_volume, write_volume
from ..planning.plan import (
    DEFAULT_CORONAL_ANGLE_DEG,
    DEFAULT_ENTRY_DISTANCE_MM,
    DEFAULT_SAGITTAL_ANGLE_DEG,
    TARGET_KINDS,
    plan_with_quality,
)
from .options import (
    add_markups_option,
    add_point_option,
    collect_landmarks,
    progress,
    require_module,
)


def run_plan(args) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    # Before any computation: the output folder can be written (exit 2, one line).
    check_output_destinations(folders=[out], inputs=[args.mri, args.labels, *args.markups])
    if not args.labels:
        require_module("torch", ", or give --labels")
    progress(0.02, "reading the MRI")
    # Segmenting needs adequate voxels; beside given labels the MRI serves the figures, but must hold an image.
    mri = read_checked_volume(args.mri, "planning" if args.labels else "segmentation", f"the MRI {args.mri}")
    landmarks = collect_landmarks(args, (), names=("ac", "pc", "midline"))
    given = [name for name in ("ac", "pc", "midline") if name in landmarks]
    if given and len(given) < 3:
        raise DBSInputError("give all three of AC, PC and the midline point, or none (automatic localization)")
    entries = {}
    for side, point in (("left", args.entry_left), ("right", args.entry_right)):
        if point is not None:
            entries[side] = np.array(point, float)
    user_landmarks = [landmarks[name] for name in ("ac", "pc", "midline")] if given else None

    segmented = None
    if args.labels:
        from ..segmentation import localization

        progress(0.10, "reading the label map")
        labels = read_checked_volume(args.labels, "labels", f"the label map {args.labels}")
        if user_landmarks is None:
            progress(0.20, "finding AC, PC and the midline (registration to the template)")
            located = localization.register_to_template(mri)
            user_landmarks = [located.ac_ras, located.pc_ras, located.midline_ras]
            landmark_source = "automatic (registration to the CIT168 template)"
        else:
            located = localization.from_user_landmarks(*user_landmarks)
            landmark_source = "user"
    else:
        from ..segmentation import engine as segmentation

        progress(0.10, "loading the segmentation model")
        model = segmentation.load_model(device=args.device)
        segmented = segmentation.segment(mri, model, *(user_landmarks or (None, None, None)),
                                         progress=lambda f, m: progress(0.10 + 0.5 * f, m))
        labels = segmented.labels
        located = segmented.localization
        landmark_source = "user" if user_landmarks else "automatic (registration to the CIT168 template)"
        user_landmarks = [segmented.localization.ac_ras, segmented.localization.pc_ras, segmented.localization.midline_ras]
    acpc = AcpcSpace.from_landmarks(*user_landmarks)

    frame = read_image_to_frame_transform(args.image_to_frame, args.transform_file_maps) if args.image_to_frame else None
    progress(0.65, f"planning {args.target.upper()} targets")
    plan_dict = plan_with_quality(
        labels, acpc, args.target, mounting=args.mounting, frame=frame, entries_ras=entries,
        sagittal_angle_deg=args.sagittal_angle, coronal_angle_deg=args.coronal_angle,
        entry_distance_mm=args.entry_distance, level_mm=args.level, d_ratio=args.d_ratio, e_ratio=args.e_ratio,
        template_to_image_ras=located.template_to_input_ras,
    )
    quality = plan_dict["segmentation_quality"]
    plan_dict.update({"mri": str(args.mri), "labels": str(args.labels) if args.labels else "segmented by this run",
                      "landmark_source": landmark_source, "localization": located.to_dict()})

    from ..planning import report

    with staged_output_folder(out) as staging:
        progress(0.75, "drawing figures")
        figures = {"axial construction": report.axial_construction_figure(mri, labels, acpc, plan_dict, staging / "axial_construction.png")}
        for trajectory in plan_dict["trajectories"]:
            name = trajectory["name"].replace(" ", "_")
            figures[f"{trajectory['name']} trajectory"] = report.trajectory_figure(mri, labels, acpc, trajectory, staging / f"trajectory_{name}.png")
        progress(0.85, "rendering 3D")
        view, reason = report.render_3d_or_reason(labels, plan_dict["trajectories"], staging / "view_3d.png")
        if view is not None:
            figures["3D view"] = view
        else:
            plan_dict.setdefault("report_notes", []).append(f"3D view skipped: {reason}")
        if segmented is not None:
            write_volume(labels, staging / "labels.nii.gz")
        points = {"AC": acpc.ac_ras, "PC": acpc.pc_ras, "Midline": acpc.midline_ras}
        for trajectory in plan_dict["trajectories"]:
            points[f"{trajectory['name']} target"] = trajectory["target_ras"]
            points[f"{trajectory['name']} entry"] = trajectory["entry_ras"]
        write_markups_points(staging / "plan_points.mrk.json", points)
        plan_dict["elapsed_s"] = round(time.perf_counter() - started, 2)
        write_json_atomic(staging / "plan.json", plan_dict)
        (staging / "report.md").write_text(report.markdown_report(plan_dict, figures, quality), encoding="utf-8")
    progress(1.00, "done")
    for trajectory in plan_dict["trajectories"]:
        x, y, z = trajectory["set_target_leksell"]
        print(f"{trajectory['name']}: Leksell X {x:.1f} Y {y:.1f} Z {z:.1f}, ring {trajectory['set_ring_deg']:.1f}°, "
              f"arc {trajectory['set_arc_deg']:.1f}° ({args.mounting}); direct-indirect {trajectory['direct_to_indirect_mm']:.1f} mm")
        for warning in trajectory["warnings"]:
            print(f"  warning: {warning}")
    for side, reason in plan_dict["failures"].items():
        print(f"{side.upper()} side not planned: {reason}")
    for note in plan_dict.get("report_notes", []):
        print(f"note: {note}")
    print(f"Report: {out / 'report.md'}")
    return 0


def register(subparsers) -> None:

    parser = subparsers.add_parser(
        "plan", help="targets, trajectories and frame settings from an MRI (and its labels)",
        description="Plan both sides from the pre-operative MRI: Bejjani STN/PSA or GPi direct targets beside the "
        "indirect AC-PC targets, entry points, structures along each trajectory, Leksell X/Y/Z and ring/arc. "
        "Without --labels the MRI is segmented first; without AC/PC/midline they are found automatically.",
    )
    parser.add_argument("--mri", required=True, type=Path, help="pre-operative MRI (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("--labels", type=Path, help="label map (this package's codes), e.g. a corrected segmentation")
    for name, text in (("ac", "anterior commissure"), ("pc", "posterior commissure"),
                       ("midline", "a midline point above the AC-PC line"),
                       ("entry-left", "entry point of the left trajectory"), ("entry-right", "entry point of the right trajectory")):
        add_point_option(parser, name, text)
    add_markups_option(parser)
    parser.add_argument("--target", choices=TARGET_KINDS, default="stn", help="stn (Bejjani 20:2/20:1), psa (20:2/20:4) or gpi")
    parser.add_argument("--d-ratio", type=float, help="custom Bejjani D/C (with --e-ratio)")
    parser.add_argument("--e-ratio", type=float, help="custom Bejjani E/C (with --d-ratio)")
    parser.add_argument("--level", type=float, default=-4.0, help="construction plane, mm from the AC-PC plane (default -4)")
    parser.add_argument("--mounting", choices=MOUNTINGS, default="lateral-right")
    parser.add_argument("--image-to-frame", type=Path, help="rigid ITK transform between image and frame")
    parser.add_argument("--transform-file-maps", choices=TRANSFORM_FILE_CONVENTIONS, default="frame-to-image")
    parser.add_argument("--sagittal-angle", type=float, default=DEFAULT_SAGITTAL_ANGLE_DEG, help="approach above the AC-PC plane, side view (default 60°)")
    parser.add_argument("--coronal-angle", type=float, default=DEFAULT_CORONAL_ANGLE_DEG, help="approach off the midsagittal plane, front view (default 15°)")
    parser.add_argument("--entry-distance", type=float, default=DEFAULT_ENTRY_DISTANCE_MM, help="target to entry distance (default 70 mm)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(handler=run_plan)
