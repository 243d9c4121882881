"""Command line: ``dbs-plan <command>`` (also ``python -m DBSSegmentationLogic <command>``).

Exit codes: 0 success, 2 bad input (one line on stderr names the problem), 3 internal failure,
130 cancelled.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import __version__, plan_command, postop_command, segment_command
from .atomic import write_json_atomic
from .acpc import AcpcSpace
from .exceptions import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_INTERNAL_ERROR, EXIT_OK, DBSInputError
from .frame import (
    MOUNTINGS, TRANSFORM_FILE_CONVENTIONS, FrameSpace, direction_from_ring_arc, read_image_to_frame_transform,
)
from .frameplan import FramePlan, compute_frame_plan
from .markups import find_landmarks, read_markups_points

LANDMARK_OPTIONS = ("ac", "pc", "midline", "target", "entry")


def add_point_option(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(f"--{name}", nargs=3, type=float, metavar=("R", "A", "S"), help=f"{help_text} (RAS mm)")


def add_markups_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--markups", action="append", default=[], metavar="FILE.mrk.json",
        help="Slicer markups file(s) with points labelled AC, PC, midline, target, entry; "
        "points given as options take precedence",
    )


def collect_landmarks(args, required: Sequence[str], names: Sequence[str] = LANDMARK_OPTIONS) -> dict[str, np.ndarray]:
    """Landmarks ``names`` from markups files, overridden by explicit options; error if a required one is missing."""
    landmarks: dict[str, np.ndarray] = {}
    for markups_path in args.markups:
        for name, point in find_landmarks(read_markups_points(markups_path)).items():
            if name in names:
                landmarks[name] = point
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            landmarks[name] = np.array(value, dtype=float)
    missing = [name for name in required if name not in landmarks]
    if missing:
        raise DBSInputError(
            "missing landmark(s): " + ", ".join(missing) + " (give --" + " --".join(missing) + " or a markups file)"
        )
    return landmarks


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


def add_frame_parser(subparsers) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbs-plan", description="Deep brain stimulation planning: segmentation, targets, frame settings."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_frame_parser(subparsers)
    plan_command.register(subparsers)
    postop_command.register(subparsers)
    segment_command.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except DBSInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as error:  # noqa: BLE001 - one line for the user; DBS_DEBUG=1 shows the traceback
        if os.environ.get("DBS_DEBUG"):
            raise
        print(f"internal error: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
