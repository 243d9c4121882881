"""``segment`` subcommand: the background process of DESIGN section 7.

    python -m DBSSegmentationLogic segment --input IMG --output LABELS.nii.gz \
        [--ac R A S --pc R A S --midline R A S] [--device auto|cpu|cuda] [--json OUT.json] [--color-table OUT.txt]

Prints ``PROGRESS <fraction> <step>`` lines on stdout (flushed). Writes the label map on the input's
own grid, beside it the uncertainty map ``LABELS_uncertainty.nii.gz`` (float32 on the same grid: 1 - the
maximum posterior of the engine, 0 = certain; 0 outside the region of interest), the colour table
(code name R G B A) and a JSON report (per structure: volume, centroid in RAS and AC-PC, confidence,
quality flags including ``uncertain`` and ``fallback_atlas``; localization; fit; timings). The output paths are checked writable before any
computation; every output is staged beside its destination and all are moved into place together at
the end; on failure or cancel none is left behind and earlier files at those paths stay byte-identical.

Exit codes: 0 ok, 2 bad input (one line on stderr), 3 internal failure, 130 cancelled (SIGINT/SIGTERM).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..io.exceptions import (
    EXIT_OK,
    DBSInputError,
)
from ..io.input_checks import check_output_destinations
from ..io.staged_output import staged_files, write_json_atomic
from ..io.volumes import check_image_output_format, read_checked_volume, write_volume
from ..segmentation import labels as label_codes
from .options import progress, require_module


def _default_path(labels_path: Path, suffix: str) -> Path:
    name = labels_path.name
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.lower().endswith(ending):
            name = name[: -len(ending)]
            break
    return labels_path.with_name(name + suffix)


def run(args) -> int:
    started = time.perf_counter()
    output = Path(args.output)
    json_path = Path(args.json) if args.json else _default_path(output, ".json")
    table_path = Path(args.color_table) if args.color_table else _default_path(output, "_colors.txt")
    uncertainty_path = _default_path(output, "_uncertainty.nii.gz")
    outputs = {"labels": output, "uncertainty": uncertainty_path, "color_table": table_path, "json": json_path}
    # Before any computation: every output writable, none an input (exit 2, one line).
    check_output_destinations(files=outputs.values(), inputs=[args.input])
    check_image_output_format(output)
    landmarks = [args.ac, args.pc, args.midline]
    if any(p is not None for p in landmarks) and not all(p is not None for p in landmarks):
        raise DBSInputError("give all three of --ac, --pc and --midline, or none (automatic localization)")
    torch = require_module("torch")  # deferred: `frame` and other commands do not need torch

    from ..segmentation import engine as segmentation

    torch.set_num_threads(max(1, min(os.cpu_count() or 1, args.threads)))
    progress(0.00, "reading")
    volume = read_checked_volume(args.input, "segmentation", f"the input image {args.input}")
    progress(0.05, "loading model")
    model = segmentation.load_model(device=args.device)
    result = segmentation.segment(volume, model, *(np.array(p) if p else None for p in landmarks),
                                  progress=progress)
    progress(0.90, "writing")
    # All outputs staged beside their destinations and moved into place together (an earlier
    # result stays byte-identical unless every new file is complete).
    with staged_files(outputs.values()) as staged:
        write_volume(result.labels, staged[output])
        write_volume(result.uncertainty, staged[uncertainty_path])
        staged[table_path].write_text("\n".join(label_codes.colour_table_lines()) + "\n")
        report = result.to_dict()
        report["input"] = str(args.input)
        report["outputs"] = {name: str(path) for name, path in outputs.items()}
        report["timings_s"]["command_total"] = round(time.perf_counter() - started, 3)
        write_json_atomic(staged[json_path], report)
    for structure in result.structures:
        flags = ", ".join(structure.flags) if structure.flags else "ok"
        confidence = "" if structure.confidence is None else f"  confidence {structure.confidence:.2f}"
        print(f"{structure.name:10s} {structure.volume_mm3:8.1f} mm3{confidence}  {flags}")
    progress(1.00, "done")
    return EXIT_OK


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment", help="segment STN, RN, SN, GPi and GPe (left and right) on an MRI",
        description="Segment the left and right STN, RN, SN, GPi and GPe on a T1w/T2w/T2*/SWI/QSM image. "
        "Without --ac/--pc/--midline the basal ganglia are found by registration to the CIT168 template.",
    )
    parser.add_argument("--input", required=True, help="input image (NIfTI, NRRD, MHA, or a DICOM folder)")
    parser.add_argument("--output", required=True, help="output label map (.nii.gz, .nii, .nrrd, .mha)")
    for name, text in (("ac", "anterior commissure"), ("pc", "posterior commissure"),
                       ("midline", "a midline point above the AC-PC line")):
        parser.add_argument(f"--{name}", nargs=3, type=float, metavar=("R", "A", "S"), help=f"{text} (RAS mm)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the engine (default 2)")
    parser.add_argument("--json", help="report path (default: beside the labels, .json)")
    parser.add_argument("--color-table", help="colour table path (default: beside the labels, _colors.txt)")
    parser.set_defaults(handler=run)
