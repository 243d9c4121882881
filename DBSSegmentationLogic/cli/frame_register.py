"""``frame-register`` subcommand: automatic N-localizer registration on a frame CT or MRI.

    dbs-plan frame-register --image FRAME_CT_OR_MRI --localizer leksell-g|GEOMETRY.json [--out DIR]
                            [--max-rms MM]

Writes into DIR (staged: everything or nothing, an earlier result stays as it was on failure):
``image_to_frame.tfm`` (read unchanged by ``--image-to-frame`` of ``frame``, ``plan`` and ``postop``: as
Slicer saves a transform node that moves the image into the frame), ``frame_registration.json``
(``image_to_frame_ras``, rods found, every fiducial's residual, RMS and max residual, slices used) and
``frame_registration.png`` (the detected fiducials over the model). Prints ``PROGRESS`` lines.
Exit codes: 0 ok, 2 bad input or refused registration (one line on stderr), 3 internal failure,
130 cancelled (SIGINT/SIGTERM).
"""
from __future__ import annotations

import time
from pathlib import Path

from ..frame_registration import load_localizer, register_frame
from ..frame_registration.localizer_geometry import PRESETS
from ..frame_registration.rigid_fit import MAX_RMS_MM
from ..geometry.frame import write_image_to_frame_transform
from ..io.exceptions import DBSInputError
from ..io.input_checks import check_content, check_geometry, check_output_destinations
from ..io.staged_output import staged_output_folder, write_json_atomic
from ..io.volumes import read_volume
from .options import progress, require_module

TRANSFORM_NAME = "image_to_frame.tfm"
REPORT_NAME = "frame_registration.json"
FIGURE_NAME = "frame_registration.png"


def run_frame_register(args) -> int:
    started = time.perf_counter()
    if not args.max_rms > 0:
        raise DBSInputError(f"--max-rms must be positive, got {args.max_rms}")
    out = Path(args.out)
    geometry_file = None if args.localizer in PRESETS else Path(args.localizer)
    check_output_destinations(folders=[out], inputs=[args.image, geometry_file])
    require_module("matplotlib", ' (frame-register draws its figure with it): pip install "dbs-targeting[report]"')
    progress(0.00, "reading the localizer geometry")
    geometry = load_localizer(args.localizer)
    progress(0.03, "reading the image")
    volume = read_volume(args.image)
    check_geometry(volume, f"image {args.image}")
    check_content(volume, f"image {args.image}")
    registration = register_frame(volume, geometry, progress=progress, max_rms_mm=args.max_rms)
    from ..frame_registration.report import registration_figure

    result = registration.to_dict()
    result["image"] = str(args.image)
    result["localizer_geometry"] = geometry.to_dict()
    result["outputs"] = {"transform": TRANSFORM_NAME, "figure": FIGURE_NAME,
                         "transform_convention": "frame-to-image file (as Slicer saves a transform node that moves "
                                                 "the image into the frame); read it with --image-to-frame"}
    with staged_output_folder(out) as staging:
        progress(0.85, "drawing the figure")
        registration_figure(registration, staging / FIGURE_NAME)
        write_image_to_frame_transform(registration.frame_space(), staging / TRANSFORM_NAME)
        result["seconds_total"] = round(time.perf_counter() - started, 2)
        write_json_atomic(staging / REPORT_NAME, result)
    progress(1.00, "done")
    print(f"Localizer: {registration.localizer}; N-localizers found: {', '.join(registration.n_localizers_found)}")
    print(f"Fiducials: {len(registration.fiducials)} on {registration.slices_used} slices; RMS residual "
          f"{registration.rms_residual_mm:.2f} mm, max {registration.max_residual_mm:.2f} mm; frame rotated "
          f"{registration.rotation_deg:.1f}° from the image axes")
    for warning in registration.warnings:
        print(f"warning: {warning}")
    print(f"Transform: {out / TRANSFORM_NAME} (use with --image-to-frame)")
    print(f"Time: {time.perf_counter() - started:.1f} s")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "frame-register", help="register the stereotactic localizer (N-localizers) on a frame CT or MRI",
        description="Find the localizer's N-localizer rods in a frame CT or MRI (axial slices), fit the rigid "
        "image-to-frame transform to all fiducials (diagonal points and vertical rods) and write it as a transform "
        "file that --image-to-frame reads. A localizer that does not fit rigidly (wrong geometry, scaled image) or "
        "an image without a localizer is refused (exit 2).",
    )
    parser.add_argument("--image", required=True, type=Path, help="frame CT or MRI (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("--localizer", required=True, metavar="GEOMETRY",
                        help=f"localizer preset ({', '.join(PRESETS)}; nominal dimensions, verify against your "
                        "frame's manual) or a geometry JSON file (docs/frame_registration.md)")
    parser.add_argument("--out", type=Path, default=Path("frame_registration"),
                        help="output folder (default: ./frame_registration)")
    parser.add_argument("--max-rms", type=float, default=MAX_RMS_MM, metavar="MM",
                        help=f"refuse a fit whose RMS fiducial residual exceeds this (default {MAX_RMS_MM:g} mm)")
    parser.set_defaults(handler=run_frame_register)
