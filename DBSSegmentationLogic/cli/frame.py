"""``dbs-plan frame``: Leksell X/Y/Z, ring and arc of one trajectory from landmarks (or the inverse)."""
from __future__ import annotations

from pathlib import Path

from ..geometry.acpc import AcpcSpace
from ..geometry.frame import (
    MOUNTINGS,
    TRANSFORM_FILE_CONVENTIONS,
    FrameSpace,
    direction_from_ring_arc,
    read_image_to_frame_transform,
)
from ..geometry.frameplan import FramePlan, compute_frame_plan
from ..io.exceptions import EXIT_OK, DBSInputError
from ..io.input_checks import check_output_destinations
from ..io.staged_output import write_json_atomic
from .options import add_markups_option, add_point_option, collect_landmarks


def format_frame_plan(plan: FramePlan) -> str:
    data = plan.to_dict()
    target, entry = data["target"], data["entry"]
    clinical = target["acpc_clinical"]

    def triple(values, digits=1):
        return "  ".join(f"{v:8.{digits}f}" for v in values)

    def leksell(d):
        return (f"X {d['X_mm']:6.1f} (set {d['set_X_mm']:5.1f})  Y {d['Y_mm']:6.1f} (set {d['set_Y_mm']:5.1f})  "
                f"Z {d['Z_mm']:6.1f} (set {d['set_Z_mm']:5.1f})")

    lines = [
        f"Frame plan — {data['frame']}, {data['mounting']} mounting",
        f"  AC-PC length            {data['acpc_length_mm']:.1f} mm;  MCP (RAS) {triple(data['landmarks_ras']['mcp'])}",
        f"  Target side             {target['side'].upper()} hemisphere",
        f"  Target RAS (mm)         {triple(target['ras'])}",
        f"  Target AC-PC            {clinical['lateral_mm']:.1f} mm {clinical['side']}, "
        f"{abs(clinical['ap_mm']):.1f} mm {'anterior' if clinical['ap_mm'] >= 0 else 'posterior'}, "
        f"{abs(clinical['vertical_mm']):.1f} mm {'above' if clinical['vertical_mm'] >= 0 else 'below'} the MCP",
        f"  Target Leksell (mm)     {leksell(target['leksell'])}",
        f"  Entry RAS (mm)          {triple(entry['ras'])}",
        f"  Entry Leksell (mm)      {leksell(entry['leksell'])}",
        f"  Ring                    {data['ring_deg']:7.2f}°  (set {data['set_ring_deg']:.1f}°)",
        f"  Arc                     {data['arc_deg']:7.2f}°  (set {data['set_arc_deg']:.1f}°)",
        f"  Trajectory length       {data['trajectory_length_mm']:.1f} mm",
    ]
    return "\n".join(lines)


def run_frame(args) -> int:
    if args.json:  # before any computation: the JSON can be written (exit 2, one line)
        check_output_destinations(files=[args.json], inputs=[*args.markups, args.image_to_frame])
    if args.ring is not None or args.arc is not None:
        if args.ring is None or args.arc is None:
            raise DBSInputError("give both --ring and --arc (or neither, with --entry)")
        if args.entry is not None:
            raise DBSInputError("give either --entry or --ring/--arc, not both")
    required = ["ac", "pc", "midline"]
    if args.target_leksell is None:
        required.append("target")
    if args.ring is None:
        required.append("entry")
    landmarks = collect_landmarks(args, required)
    image_to_frame = (
        read_image_to_frame_transform(args.image_to_frame, args.transform_file_maps) if args.image_to_frame else None
    )
    frame = image_to_frame or FrameSpace.virtual(
        AcpcSpace.from_landmarks(landmarks["ac"], landmarks["pc"], landmarks["midline"])
    )
    if args.target_leksell is not None:
        landmarks["target"] = frame.ras_from_leksell(args.target_leksell)
    if args.ring is not None:
        if not args.entry_distance > 0:
            raise DBSInputError(f"--entry-distance must be positive, got {args.entry_distance}")
        direction = frame.vector_to_image_ras(direction_from_ring_arc(args.ring, args.arc, args.mounting))
        landmarks["entry"] = landmarks["target"] + args.entry_distance * direction
    plan = compute_frame_plan(
        landmarks["ac"], landmarks["pc"], landmarks["midline"], landmarks["target"], landmarks["entry"],
        mounting=args.mounting, image_to_frame=frame,
    )
    print(format_frame_plan(plan))
    if args.json:
        write_json_atomic(args.json, plan.to_dict())
        print(f"JSON written to {args.json}")
    return EXIT_OK


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "frame",
        help="frame settings (Leksell X/Y/Z, ring, arc) for a target and entry",
        description="Compute Leksell frame coordinates, ring and arc for one trajectory, from AC, PC, a "
        "midline point, the target and the entry (RAS mm, as shown in Slicer). Without --image-to-frame "
        "the virtual frame is used: AC-PC aligned, with the mid-commissural point at the frame centre. "
        "Inverse use: give the target as --target-leksell and/or the direction as --ring/--arc.",
    )
    for name, help_text in (
        ("ac", "anterior commissure"), ("pc", "posterior commissure"),
        ("midline", "a midline point above the AC-PC line"), ("target", "target"), ("entry", "entry point"),
    ):
        add_point_option(parser, name, help_text)
    parser.add_argument("--target-leksell", nargs=3, type=float, metavar=("X", "Y", "Z"),
                        help="target as Leksell X, Y, Z mm instead of --target")
    parser.add_argument("--ring", type=float, metavar="DEG", help="ring angle [0, 180] instead of --entry")
    parser.add_argument("--arc", type=float, metavar="DEG", help="arc angle [0, 180] instead of --entry")
    parser.add_argument("--entry-distance", type=float, default=70.0, metavar="MM",
                        help="with --ring/--arc: distance from target to the entry point (default 70 mm)")
    add_markups_option(parser)
    parser.add_argument("--mounting", choices=MOUNTINGS, default="lateral-right", help="arc mounting (default: lateral-right)")
    parser.add_argument("--image-to-frame", type=Path, metavar="FILE",
                        help="rigid ITK transform (.tfm/.h5/.txt) between image and frame-aligned RAS")
    parser.add_argument("--transform-file-maps", choices=TRANSFORM_FILE_CONVENTIONS, default="frame-to-image",
                        help="what the transform file maps: 'frame-to-image' (default; as Slicer saves a transform "
                        "node that moves the image into the frame) or 'image-to-frame'")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the plan as JSON")
    parser.set_defaults(handler=run_frame)
