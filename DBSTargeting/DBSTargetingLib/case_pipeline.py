"""A case from inputs to results in a scene, without Qt: what the module logic and the batch script run.

Steps, each usable alone: the MRI (a node) -> segmentation (a :class:`SegmentationJob` in a child
process, or a given label map) -> segmentation node with surfaces and models -> plan dict (the same
dict as ``dbs-plan plan`` writes to ``plan.json``) -> markups, lines and table -> post-operative CT
evaluated against the plan (a :class:`PostopJob` in a child process) -> lead models, contacts, error
table and fusion transform -> ``plan.json``, ``postop.json`` and an ``.mrb`` scene. Every node of a
case goes into one subject-hierarchy folder named after the case.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.staged_output import write_json_atomic
from DBSSegmentationLogic.io.volumes import Volume

from . import plan_nodes, postop_nodes, scene_files, segmentation_nodes
from .mrml_glue import (
    remove_node,
    update_volume_node,
    volume_from_volume_node,
    volume_node_from_volume,
    vtk_matrix_from_array,
)
from .postop_job import PostopJob
from .segmentation_job import SegmentationJob
from .subject_hierarchy import (
    case_folder,
    find_case_folder,
    nodes_in_folder,
    place_in_folder,
)

SEGMENTATION_NODE = "Structures"
UNCERTAINTY_NODE = "Structures uncertainty"
ROLE_ATTRIBUTE = "DBSTargeting.role"
SEGMENTATION_ROLE = "segmentation"
UNCERTAINTY_ROLE = "uncertainty"
#: The segment command's JSON report, kept on the segmentation node (localization, flags, confidence).
REPORT_ATTRIBUTE = "DBSTargeting.segmentationReport"

#: How the quality flags of the segment command read in the module's warning line.
FLAG_TEXT = {
    "missing": "missing",
    "fragmented": "fragmented (pieces outside the main body)",
    "implausible_volume": "implausible volume",
    "wrong_side": "on the wrong side",
    "uncertain": "uncertain",
    "fallback_atlas": "atlas shape (not seen in the image)",
}


@dataclass
class PlanSettings:
    """The planning choices a user makes (names as in ``dbs-plan plan``)."""

    target_kind: str = "stn"  # stn (Bejjani 20:2/20:1), psa (20:2/20:4) or gpi
    mounting: str = "lateral-right"
    level_mm: float = -4.0
    d_ratio: Optional[float] = None  # custom Bejjani D/C, with e_ratio
    e_ratio: Optional[float] = None
    entries_ras: dict = field(default_factory=dict)  # side -> user entry point

    def __post_init__(self):
        if (self.d_ratio is None) != (self.e_ratio is None):
            raise DBSInputError("give both the D and the E ratio, or neither (preset of the target)")


def plan_dict(labels: Volume, landmarks_ras: Optional[dict], settings: PlanSettings, localization: Optional[dict] = None,
              mri: Optional[Volume] = None, frame=None) -> dict:
    """The case plan (``plan.json`` content) from a label map. AC, PC and the midline point come from
    ``landmarks_ras`` (the user's), else from ``localization`` (the ``localization`` of the segment
    command's report: the registration done once in the background is reused, never repeated), else,
    only when ``mri`` is given (batch mode, no GUI thread to block), from a registration of ``mri`` to
    the template. ``frame``: a real frame (``FrameSpace``) or ``None`` (virtual frame). Sides whose
    nuclei carry quality flags are blocked, as in ``dbs-plan plan``."""
    import numpy as np

    from DBSSegmentationLogic.geometry.acpc import AcpcSpace
    from DBSSegmentationLogic.io.input_checks import check_volume
    from DBSSegmentationLogic.planning.plan import plan_with_quality
    from DBSSegmentationLogic.segmentation import localization as localization_logic

    check_volume(labels, "labels", "the segmentation")  # the same gate as `dbs-plan plan --labels`
    if mri is not None:
        check_volume(mri, "planning", "the MRI")
    if landmarks_ras is not None:
        located = localization_logic.from_user_landmarks(landmarks_ras["ac"], landmarks_ras["pc"], landmarks_ras["midline"])
        localization, source = located.to_dict(), "user"
    elif localization is not None:
        landmarks_ras = {name: np.asarray(localization[f"{name}_ras"], float) for name in ("ac", "pc", "midline")}
        source = f"automatic ({localization.get('method', 'registration')} of the segmentation run, reused)"
    elif mri is not None:
        located = localization_logic.register_to_template(mri)
        localization, source = located.to_dict(), "automatic (registration to the CIT168 template)"
        landmarks_ras = {"ac": located.ac_ras, "pc": located.pc_ras, "midline": located.midline_ras}
    else:
        raise DBSInputError("select a point list with AC, PC and the midline point, or segment the MRI first "
                            "(the segmentation finds them)")
    acpc = AcpcSpace.from_landmarks(landmarks_ras["ac"], landmarks_ras["pc"], landmarks_ras["midline"])
    plan = plan_with_quality(
        labels, acpc, settings.target_kind, mounting=settings.mounting, entries_ras=settings.entries_ras or None,
        level_mm=settings.level_mm, d_ratio=settings.d_ratio, e_ratio=settings.e_ratio, frame=frame,
        template_to_image_ras=np.asarray(localization["template_to_input_ras"], float),
    )
    plan["landmark_source"] = source
    plan["localization"] = localization
    if frame is not None:
        plan["image_to_frame_ras"] = np.asarray(frame.image_to_frame_ras, float).tolist()
        plan["frame_source"] = frame.description
    return plan


def segmentation_warnings(report: Optional[dict]) -> list[str]:
    """One line per structure the segment command flagged (missing, fragmented, implausible volume, wrong
    side, uncertain, atlas fallback), with its confidence when the report gives one."""
    lines = []
    for structure in (report or {}).get("structures", []):
        flags = [FLAG_TEXT.get(flag, flag.replace("_", " ")) for flag in structure.get("flags") or []]
        if structure.get("uncertain") and "uncertain" not in flags:
            flags.append("uncertain")
        if structure.get("fallback_atlas") and FLAG_TEXT["fallback_atlas"] not in flags:
            flags.append(FLAG_TEXT["fallback_atlas"])
        if not flags:
            continue
        confidence = structure.get("confidence")
        suffix = f" (confidence {confidence:.2f})" if isinstance(confidence, (int, float)) else ""
        lines.append(f"{structure.get('name', '?')}: {', '.join(flags)}{suffix}")
    return lines


def segmentation_report(node) -> Optional[dict]:
    """The segment command's report kept on a segmentation node made by the module, or ``None``."""
    import json

    text = node.GetAttribute(REPORT_ATTRIBUTE) if node is not None else None
    return json.loads(text) if text else None


def _case_node_with_role(scene, case_name: str, role: str):
    folder = find_case_folder(scene, case_name)
    if not folder:
        return None
    return next((node for node in nodes_in_folder(scene, folder) if node.GetAttribute(ROLE_ATTRIBUTE) == role), None)


def segmentation_to_scene(scene, case_name: str, labels: Volume, mri_node=None, show_3d: bool = True, output_node=None,
                          report: Optional[dict] = None, uncertainty: Optional[Volume] = None, terminology_logic=None):
    """The segmentation of a case in its folder: ``output_node`` when given, else the case's segmentation
    from an earlier run, else a new node "Structures" (so a re-run never adds a second one). Named,
    coloured segments with their terminology; in 3D one representation per structure, the closed
    surface (``show_3d``). ``report`` (the segment command's JSON: localization, flags) is kept on the
    node; ``uncertainty`` (the command's uncertainty map, when it wrote one) becomes the scalar volume
    "Structures uncertainty" of the case, replacing an earlier one. Returns the segmentation node."""
    import json

    folder = case_folder(scene, case_name)
    node = output_node or _case_node_with_role(scene, case_name, SEGMENTATION_ROLE)
    node = segmentation_nodes.segmentation_node_from_labels(scene, labels, SEGMENTATION_NODE, mri_node, node=node,
                                                            terminology_logic=terminology_logic)
    node.SetAttribute(ROLE_ATTRIBUTE, SEGMENTATION_ROLE)
    node.SetAttribute(REPORT_ATTRIBUTE, json.dumps(report) if report else "")
    place_in_folder(scene, node, folder)
    if show_3d:
        segmentation_nodes.show_closed_surfaces(node)
    previous = _case_node_with_role(scene, case_name, UNCERTAINTY_ROLE)
    if uncertainty is not None:
        if previous is None:
            previous = volume_node_from_volume(scene, uncertainty, UNCERTAINTY_NODE)
            previous.SetAttribute(ROLE_ATTRIBUTE, UNCERTAINTY_ROLE)
            previous.SetDescription("voxel-wise uncertainty of the automatic segmentation (higher = less certain)")
        else:
            update_volume_node(previous, uncertainty)
        place_in_folder(scene, previous, folder)
    elif previous is not None:
        remove_node(scene, previous)  # an uncertainty map of an earlier run no longer matches the segmentation
    return node


def uncertainty_node(scene, case_name: str):
    """The case's "Structures uncertainty" volume, or ``None`` (the segment command wrote no map)."""
    return _case_node_with_role(scene, case_name, UNCERTAINTY_ROLE)


def plan_to_scene(scene, case_name: str, plan: dict) -> dict:
    """Targets, indirect targets, landmarks, trajectory lines and transforms and the coordinate table in
    the case folder, replacing those of an earlier plan of the case."""
    return plan_nodes.plan_to_nodes(scene, plan, case_folder(scene, case_name))


def run_segmentation(mri_node, device: str = "auto", landmarks_ras: Optional[dict] = None,
                     on_line: Optional[Callable] = None, **job_options) -> Volume:
    """Blocking segmentation of an MRI node in a child process; returns the label map (raises with the
    child's one-line reason on failure). Leaves no file behind."""
    from DBSSegmentationLogic.io.input_checks import check_volume

    mri = volume_from_volume_node(mri_node)
    check_volume(mri, "segmentation", "the MRI")  # refused at once, not after starting the child
    job = SegmentationJob(mri, device=device, landmarks_ras=landmarks_ras, **job_options)
    job.start()
    try:
        result = job.wait(on_line=on_line)
        if not result.succeeded:
            raise DBSInputError(f"segmentation {result.status}: {result.reason}")
        labels, _report = job.outputs()
        return labels
    finally:
        job.cleanup()


def plan_in_scene(scene, case_name: str) -> Optional[dict]:
    """The latest plan shown in the case folder (kept on its coordinate table), or ``None``: a plan
    survives saving and reloading the scene."""
    import json

    folder = find_case_folder(scene, case_name)
    if not folder:
        return None
    plans = [node.GetAttribute(plan_nodes.PLAN_ATTRIBUTE) for node in nodes_in_folder(scene, folder)
             if node.IsA("vtkMRMLTableNode") and node.GetAttribute(plan_nodes.PLAN_ATTRIBUTE)]
    return json.loads(plans[-1]) if plans else None


def postop_ct_volume(ct_node) -> Volume:
    """The post-operative CT as loaded: under the case's fusion transform (an earlier evaluation) its
    own geometry, so the new fusion does not start from the old one; any other linear transform of
    the user is folded in, as for every volume."""
    if ct_node is None:
        raise DBSInputError("select the post-operative CT first")
    return volume_from_volume_node(ct_node, world=not postop_nodes.is_postop_node(ct_node.GetParentTransformNode()))


def postop_job(plan: dict, ct_node, mri_node=None, preop_ct_node=None, sources: Optional[dict] = None,
               **job_options) -> PostopJob:
    """A (not yet started) :class:`PostopJob` for the nodes of a case. The result names the images
    by their nodes and the plan as ``plan.json`` (as :func:`save_case` writes it beside
    ``postop.json``), unless ``sources`` says otherwise."""
    volume = postop_ct_volume(ct_node)
    named = {"plan": "plan.json", "ct": ct_node.GetName()}
    if mri_node is not None:
        named["mri"] = mri_node.GetName()
    if preop_ct_node is not None:
        named["preop_ct"] = preop_ct_node.GetName()
    return PostopJob(
        plan, volume,
        mri=None if mri_node is None else volume_from_volume_node(mri_node),
        preop_ct=None if preop_ct_node is None else volume_from_volume_node(preop_ct_node),
        sources={**named, **(sources or {})},
        **job_options,
    )


def run_postop(plan: dict, ct_node, mri_node=None, preop_ct_node=None, on_line: Optional[Callable] = None,
               **job_options) -> dict:
    """Blocking post-operative evaluation in a child process; returns the ``postop.json`` dict
    (raises with the child's one-line reason on failure). Leaves no file behind."""
    job = postop_job(plan, ct_node, mri_node, preop_ct_node, **job_options)
    job.start()
    try:
        job.wait(on_line=on_line)
        return job.outputs()
    finally:
        job.cleanup()


def postop_to_scene(scene, case_name: str, postop: dict, ct_node=None) -> dict:
    """Lead models, contacts, tips, error table and fusion transform in the case folder (replacing an
    earlier evaluation's); ``ct_node`` goes under the fusion transform."""
    return postop_nodes.postop_to_nodes(scene, postop, case_folder(scene, case_name), ct_node)


def save_case(scene, plan: dict, out_dir, case_name: str, postop: Optional[dict] = None) -> dict:
    """``plan.json``, ``postop.json`` (when given) and ``<case>.mrb`` in ``out_dir`` (each written
    atomically). Returns their paths."""
    out_dir = Path(out_dir)
    paths = {"plan": write_json_atomic(out_dir / "plan.json", plan)}
    if postop is not None:
        paths["postop"] = write_json_atomic(out_dir / "postop.json", postop)
    paths["scene"] = scene_files.save_mrb(scene, out_dir / f"{_file_name(case_name)}.mrb")
    return paths


def _file_name(case_name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in case_name).strip("._")
    return cleaned or "case"


FRAME_TRANSFORM_NODE = "Image to frame"
FRAME_TABLE_NODE = "Frame registration residuals"
FRAME_ROLE = "frame registration"
FRAME_REPORT_ATTRIBUTE = "DBSTargeting.frameRegistration"
FRAME_COLUMNS = (
    ("N-localizer", "string"), ("Rod", "string"), ("Kind", "string"), ("Slice", "double"),
    ("R (mm)", "double"), ("A (mm)", "double"), ("S (mm)", "double"),
    ("Leksell X (mm)", "double"), ("Leksell Y (mm)", "double"), ("Leksell Z (mm)", "double"),
    ("Residual (mm)", "double"),
)


def frame_registration_rows(report: dict) -> list[dict]:
    """One row per fiducial of ``frame_registration.json``: where it was found and its residual."""
    rows = []
    for fiducial in report.get("fiducials", []):
        values = [fiducial.get("n_localizer", ""), fiducial.get("rod", ""), fiducial.get("kind", ""),
                  fiducial.get("slice"), *fiducial.get("image_ras", [None] * 3),
                  *fiducial.get("leksell_xyz", [None] * 3), fiducial.get("residual_mm")]
        rows.append({name: value for (name, _), value in zip(FRAME_COLUMNS, values)})
    return rows


def frame_registration_to_scene(scene, case_name: str, report: dict, transform_node=None) -> dict:
    """The result of ``frame-register`` in the case folder: the linear transform "Image to frame" (or
    ``transform_node``; the case's earlier one is updated in place, so what the user placed under it stays)
    whose "to parent" matrix is the report's ``image_to_frame_ras`` (image RAS -> frame RAS: the image-to-frame
    input of planning and post-op), and the table "Frame registration residuals" (one row per fiducial;
    RMS and max in its description), replacing an earlier one. Returns ``{"transform", "table"}``."""
    import json

    import numpy as np

    from DBSSegmentationLogic.geometry.frame import FrameSpace

    matrix = np.asarray(report["image_to_frame_ras"], float)
    FrameSpace.from_matrix(matrix, "the frame registration's image-to-frame transform")  # rigid, or refused
    folder = case_folder(scene, case_name)
    previous = [node for node in nodes_in_folder(scene, folder) if node.GetAttribute(ROLE_ATTRIBUTE) == FRAME_ROLE]
    transform = transform_node or next((node for node in previous if node.IsA("vtkMRMLLinearTransformNode")), None)
    for node in previous:
        if node is not transform:
            remove_node(scene, node)
    if transform is None:
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", FRAME_TRANSFORM_NODE)
    transform.SetMatrixTransformToParent(vtk_matrix_from_array(matrix))
    transform.SetAttribute(ROLE_ATTRIBUTE, FRAME_ROLE)
    summary = (f"{report.get('localizer', 'localizer')}: {report.get('fiducial_count', len(report.get('fiducials', [])))} "
               f"fiducials, RMS residual {report.get('rms_residual_mm', float('nan')):.2f} mm, "
               f"max {report.get('max_residual_mm', float('nan')):.2f} mm")
    transform.SetDescription("moves the image into the stereotactic frame (frame registration); " + summary)
    place_in_folder(scene, transform, folder)
    table = plan_nodes.table_node(scene, FRAME_TABLE_NODE, FRAME_COLUMNS, frame_registration_rows(report), folder,
                                  {FRAME_REPORT_ATTRIBUTE: json.dumps(report), ROLE_ATTRIBUTE: FRAME_ROLE})
    table.SetDescription(summary + "".join(f"; warning: {w}" for w in report.get("warnings", [])))
    return {"transform": transform, "table": table}
