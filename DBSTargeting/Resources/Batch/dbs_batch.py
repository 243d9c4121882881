"""DBS Targeting in Slicer batch mode: segment, plan, evaluate the post-operative CT, save the scene (.mrb).

    Slicer --no-main-window --python-script dbs_batch.py -- \
        --mri T1.nii.gz --out OUT_DIR [--labels LABELS.nii.gz] [--markups LANDMARKS.mrk.json] \
        [--target stn|psa|gpi] [--d-ratio D --e-ratio E] [--mounting lateral-right|...] \
        [--device auto|cpu|cuda] [--case NAME] [--image-to-frame FRAME.tfm] \
        [--ct POSTOP_CT.nii.gz [--preop-ct PREOP_CT.nii.gz] [--lead-model medtronic-3389|...]]

Without --labels the MRI is segmented by the module's background process (blocking here); without
--markups AC, PC and the midline point are found automatically. With --ct the post-operative CT is
fused to the MRI (or to --preop-ct, registered to the MRI) after planning, the leads are found and
their error against the plan measured (``dbs-plan postop`` in a background process). Writes
OUT_DIR/plan.json, OUT_DIR/postop.json (with --ct) and OUT_DIR/<case>.mrb (every node in one
subject-hierarchy folder named after the case). With --image-to-frame (a transform file as Slicer saves a
transform node that moves the image into the frame, e.g. image_to_frame.tfm of `dbs-plan frame-register`) the
plan's Leksell coordinates and ring/arc are those of that real frame. No dialog ever opens. Exit codes as the command
line's: 0 ok, 2 bad input, 3 internal failure; nothing is written unless every step succeeded.
"""
from __future__ import annotations

import argparse
import sys
import traceback

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR = 0, 2, 3


def parse_arguments(argv):
    from DBSSegmentationLogic.postop.leads import DEFAULT_LEAD, LEAD_MODELS

    if argv and argv[0] == "--":
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="dbs_batch.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mri", required=True, help="pre-operative MRI (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("--out", required=True, help="output folder (plan.json, <case>.mrb)")
    parser.add_argument("--labels", help="label map with this module's codes: skips the segmentation")
    parser.add_argument("--markups", help="points labelled AC, PC and midline (.mrk.json)")
    parser.add_argument("--target", choices=("stn", "psa", "gpi"), default="stn")
    parser.add_argument("--d-ratio", type=float, help="custom Bejjani D/C (with --e-ratio)")
    parser.add_argument("--e-ratio", type=float, help="custom Bejjani E/C (with --d-ratio)")
    parser.add_argument("--mounting", default="lateral-right",
                        choices=("lateral-right", "lateral-left", "sagittal-anterior", "sagittal-posterior"))
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--case", default="Case", help="case name: folder in the scene and name of the .mrb")
    parser.add_argument("--image-to-frame", help="transform file of a frame registration (as Slicer saves a transform "
                        "node that moves the image into the frame): plan in that real frame")
    parser.add_argument("--ct", "--postop-ct", dest="ct",
                        help="post-operative CT: after planning, find the leads and measure their error (postop.json)")
    parser.add_argument("--preop-ct", help="pre-operative CT registered to the MRI: the post-operative CT is fused to it")
    parser.add_argument("--lead-model", choices=sorted(LEAD_MODELS),
                        help=f"implanted lead model, with --ct (default {DEFAULT_LEAD})")
    return parser.parse_args(argv)


def run(args, scene, logic, pipeline) -> int:
    """The batch job on ``scene`` with the module logic; returns the exit code. No dialogs."""
    import vtk
    from DBSTargetingLib.mrml_glue import volume_node_from_volume
    from DBSTargetingLib.subject_hierarchy import case_folder, place_in_folder

    from DBSSegmentationLogic.io.exceptions import DBSInputError
    from DBSSegmentationLogic.io.markups import read_markups_points
    from DBSSegmentationLogic.io.volumes import read_volume

    try:
        if (args.preop_ct or args.lead_model) and not args.ct:
            raise DBSInputError("--preop-ct and --lead-model are used only with --ct (post-operative evaluation)")
        settings = pipeline.PlanSettings(target_kind=args.target, mounting=args.mounting,
                                         d_ratio=args.d_ratio, e_ratio=args.e_ratio)
        logic.ensureDependencies(interactive=False, needsTorch=not args.labels)
        folder = case_folder(scene, args.case)
        mri_node = volume_node_from_volume(scene, read_volume(args.mri), "MRI")
        place_in_folder(scene, mri_node, folder)
        landmarks_node = None
        if args.markups:
            landmarks_node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Landmarks")
            for label, ras in read_markups_points(args.markups).items():
                landmarks_node.AddControlPoint(vtk.vtkVector3d(*ras), label)
            place_in_folder(scene, landmarks_node, folder)
        frame_node = None
        if args.image_to_frame:
            from DBSTargetingLib.mrml_glue import vtk_matrix_from_array

            from DBSSegmentationLogic.geometry.frame import (
                read_image_to_frame_transform,
            )

            frame = read_image_to_frame_transform(args.image_to_frame)  # the file's convention, read once here
            frame_node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Image to frame")
            frame_node.SetMatrixTransformToParent(vtk_matrix_from_array(frame.image_to_frame_ras))
            place_in_folder(scene, frame_node, folder)
        if args.labels:
            segmentation = pipeline.segmentation_to_scene(scene, args.case, read_volume(args.labels), mri_node)
        else:
            segmentation = logic.segment(mri_node, landmarks_node, args.device, args.case,
                                         onLine=lambda line: print(line.text, flush=True))
        plan = logic.planCase(mri_node, segmentation, landmarks_node, settings, args.case, allowRegistration=True,
                              imageToFrameTransform=frame_node)
        plan["mri"] = str(args.mri)
        print(logic.casePlanText(plan), flush=True)
        postop = None
        if args.ct:
            ct_node = volume_node_from_volume(scene, read_volume(args.ct), "Post-op CT")
            place_in_folder(scene, ct_node, folder)
            preop_ct_node = None
            if args.preop_ct:
                preop_ct_node = volume_node_from_volume(scene, read_volume(args.preop_ct), "Pre-op CT")
                place_in_folder(scene, preop_ct_node, folder)
            sources = {"plan": "plan.json", "ct": str(args.ct), "mri": str(args.mri)}
            if args.preop_ct:
                sources["preop_ct"] = str(args.preop_ct)
            postop = logic.postop(mri_node, ct_node, plan, preop_ct_node, args.case, leadModel=args.lead_model,
                                  onLine=lambda line: print(line.text, flush=True), sources=sources)
            print(logic.postopText(postop), flush=True)
        paths = logic.saveCase(plan, args.out, args.case, postop)
        print("\n".join(f"{kind.capitalize()}: {path}" for kind, path in paths.items()), flush=True)
        return EXIT_OK
    except DBSInputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - a batch run must end with a code and one line
        traceback.print_exc()
        print(f"internal error: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr, flush=True)
        return EXIT_INTERNAL_ERROR


def main(argv) -> int:
    try:
        args = parse_arguments(argv)
    except SystemExit as stop:  # argparse: --help or bad options
        return EXIT_OK if stop.code == 0 else EXIT_BAD_INPUT
    import slicer
    from DBSTargetingLib import case_pipeline

    import DBSTargeting  # the module's own file, on the path once Slicer loaded the module

    return run(args, slicer.mrmlScene, DBSTargeting.DBSTargetingLogic(), case_pipeline)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    try:
        import slicer

        slicer.util.exit(code)  # ends Slicer with the code (the script runs inside the app)
    except (ImportError, AttributeError):
        sys.exit(code)
