"""The module as it runs in Slicer 5.10-5.13 (issue #12), against the real MRML classes of slicer-core.

One test (at least) reproduces each problem of the issue: the import from a source checkout (1), a
segment without ``SetTerminology`` (2), torch and packages only with consent (3, test_dependencies.py;
batch here), re-running Segment and Plan without duplicates and the automatic selection of point
lists (4), the localization reused instead of repeated on the GUI thread (5); then the real frame,
the trajectory transforms, the uncertainty map and quality flags, and the Extensions Index entry.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
pytest.importorskip("scipy", reason="planning needs scipy and scikit-image")
import vtk  # noqa: E402
from DBSTargetingLib import (  # noqa: E402
    case_pipeline,
    dependencies,
    mrml_glue,
    plan_nodes,
    segmentation_nodes,
    slicer_compat,
)
from DBSTargetingLib.logic_path import ensure_logic_importable  # noqa: E402
from DBSTargetingLib.mrml_glue import volume_node_from_volume  # noqa: E402
from test_case_pipeline import SAMPLE, fake_segment, sample_case  # noqa: E402,F401  (fixtures)
from test_module_logic import _batch_script, _landmarks_node, module  # noqa: E402,F401  (fixtures)
from test_scene_results import synthetic_labels  # noqa: E402

from DBSSegmentationLogic.io.exceptions import DBSInputError  # noqa: E402
from DBSSegmentationLogic.io.volumes import Volume  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- 1. the logic package from a source checkout ---------------------------------------------------


def test_module_file_imports_its_logic_from_a_source_checkout_in_a_fresh_interpreter():
    """Only DBSTargeting/ on the path (as Slicer's --additional-module-paths gives it): the module file
    finds DBSSegmentationLogic at the repository root, and loads without scipy, scikit-image, matplotlib
    or torch (imported lazily, after the user agreed to install them)."""
    probe = Path(__file__).with_name("source_layout_probe.py")
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(probe), str(REPO_ROOT / "DBSTargeting"), sysconfig.get_paths()["purelib"]],
        capture_output=True, text=True, timeout=120, cwd=str(REPO_ROOT / "Testing"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["importable_before"] is False  # the layout that failed before the fix
    assert Path(result["logic_file"]).resolve() == REPO_ROOT / "DBSSegmentationLogic" / "__init__.py"
    assert Path(result["path_tail"]).resolve() == REPO_ROOT  # appended last: shadows nothing
    assert result["heavy_loaded"] == []


def test_logic_path_helper_in_build_and_source_layouts(tmp_path, monkeypatch):
    build = tmp_path / "lib" / "qt-scripted-modules"  # build/install tree: the package beside the module
    (build / "DbsFakeLogicBuild").mkdir(parents=True)
    (build / "DbsFakeLogicBuild" / "__init__.py").write_text("")
    source = tmp_path / "repo"  # source checkout: the package at the root, the module one level down
    (source / "DBSTargeting").mkdir(parents=True)
    (source / "DbsFakeLogicSource").mkdir()
    (source / "DbsFakeLogicSource" / "__init__.py").write_text("")
    monkeypatch.setattr(sys, "path", [str(build), str(source / "DBSTargeting"), *sys.path])

    assert ensure_logic_importable(build, package="DbsFakeLogicBuild") is None  # importable already: untouched
    path_before = list(sys.path)
    assert ensure_logic_importable(source / "DBSTargeting", package="DbsFakeLogicSource") == str(source)
    assert sys.path == [*path_before, str(source)]
    with pytest.raises(ImportError, match="DbsFakeLogicNowhere.*looked in"):
        ensure_logic_importable(source / "DBSTargeting", package="DbsFakeLogicNowhere")


# --- 2. API differences between releases ----------------------------------------------------------


class _SegmentBefore510:
    """A real vtkSegment as Slicer < 5.10 offered it: no SetTerminology / GetTerminology."""

    def __init__(self, segment):
        self._segment = segment

    def __getattr__(self, name):
        if name in ("SetTerminology", "GetTerminology", "HasTerminology"):
            raise AttributeError(name)
        return getattr(self._segment, name)


def test_terminology_shim_on_a_segment_without_set_terminology():
    entry = "Segmentation category and type - DBS Targeting~SCT^123037004^Anatomical Structure~FMA^62407^Red nucleus~SCT^7771000^Left~~^^~^^"
    real = slicer.vtkSegment()
    old = _SegmentBefore510(real)
    assert not slicer_compat.has_segment_terminology_api(old) and slicer_compat.has_segment_terminology_api(real)

    slicer_compat.set_segment_terminology(old, entry)  # the tag, as before 5.10

    assert slicer_compat.segment_terminology(old) == entry
    assert real.GetTerminology() == entry  # and the 5.10+ API reads what the old path wrote
    other = slicer.vtkSegment()
    slicer_compat.set_segment_terminology(other, entry)
    assert slicer_compat.segment_terminology(_SegmentBefore510(other)) == entry


def test_segment_run_on_a_release_without_set_terminology_still_codes_every_segment(mrml, monkeypatch):
    """Before the shim, every Segment run failed on Slicer < 5.10 after the child succeeded."""
    monkeypatch.setattr(slicer_compat, "has_segment_terminology_api", lambda segment: False)
    node = segmentation_nodes.segmentation_node_from_labels(mrml.scene, synthetic_labels(), "Structures")
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 6
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        tag = slicer_compat.segment_terminology(_SegmentBefore510(segment))
        assert segment.GetName().split("_")[1].capitalize() in tag and "FMA^" in tag


# --- 3. batch mode: nothing installed, missing packages reported with exit code 2 --------------------


def test_batch_reports_missing_torch_with_exit_code_2_and_installs_nothing(module, mrml, tmp_path, capsys, monkeypatch):
    real = dependencies.find_spec
    monkeypatch.setattr(dependencies, "find_spec", lambda name: None if name == "torch" else real(name))
    monkeypatch.setattr(dependencies, "pytorch_utils_logic", lambda: pytest.fail("batch must never install"))
    batch = _batch_script()
    args = batch.parse_arguments(["--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--out", str(tmp_path / "out")])

    assert batch.run(args, mrml.scene, module.DBSTargetingLogic(), module.case_pipeline) == 2
    error = capsys.readouterr().err
    assert "PyTorch" in error and "torch>=2.2" in error
    assert not (tmp_path / "out").exists()


# --- 4. scene hygiene -----------------------------------------------------------------------------


def _census(scene) -> dict:
    counts = {}
    for n in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(n)
        if node.IsA("vtkMRMLDisplayNode") or node.IsA("vtkMRMLStorageNode") or node.GetHideFromEditors():
            continue
        key = f"{node.GetClassName()}:{node.GetName()}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_segment_plan_segment_plan_leaves_exactly_one_set_of_result_nodes(module, mrml, fake_segment, sample_case):
    mri, _labels, landmarks = sample_case
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    points = _landmarks_node(mrml.scene, landmarks)
    settings = module.case_pipeline.PlanSettings(target_kind="stn")

    first = logic.segment(mri_node, points, device="cpu", caseName="Sample", command=fake_segment)
    logic.planCase(mri_node, first, points, settings, "Sample")
    after_first = _census(mrml.scene)
    second = logic.segment(mri_node, points, device="cpu", caseName="Sample", command=fake_segment)
    logic.planCase(mri_node, second, points, settings, "Sample")
    after_second = _census(mrml.scene)

    assert second is first  # the output segmentation is reused
    assert after_second == after_first
    for name, count in after_second.items():
        assert count == 1, name  # every result node exactly once
    expected = {"vtkMRMLSegmentationNode:Structures", "vtkMRMLMarkupsFiducialNode:Targets",
                "vtkMRMLMarkupsFiducialNode:Indirect targets", "vtkMRMLMarkupsFiducialNode:AC-PC landmarks",
                "vtkMRMLTableNode:Plan coordinates", "vtkMRMLMarkupsLineNode:L STN trajectory",
                "vtkMRMLMarkupsLineNode:R STN trajectory", "vtkMRMLLinearTransformNode:L STN trajectory transform",
                "vtkMRMLLinearTransformNode:R STN trajectory transform"}
    assert expected <= set(after_second)
    assert not [key for key in after_second if key.startswith(("vtkMRMLModelNode", "vtkMRMLLabelMapVolumeNode"))]


def test_a_selected_output_segmentation_is_filled_and_reused(module, mrml, fake_segment, sample_case):
    mri, _labels, landmarks = sample_case
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    mine = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "My segmentation")

    result = logic.segment(mri_node, None, device="cpu", caseName="Sample", command=fake_segment, outputNode=mine)

    assert result is mine and mine.GetSegmentation().GetNumberOfSegments() == 10
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_only_a_list_with_ac_pc_midline_is_preselected_never_targets(mrml, sample_case):
    plan = _synthetic_plan_dict()
    case_pipeline.plan_to_scene(mrml.scene, "Case", plan)  # "Targets", "AC-PC landmarks", ... (module-made)
    assert mrml_glue.first_landmarks_node(mrml.scene) is None  # before: "Targets" was selected, Plan then failed
    hand_made = _landmarks_node(mrml.scene, sample_case[2])
    other = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Unrelated")
    other.AddControlPoint(vtk.vtkVector3d(1, 2, 3), "somewhere")
    assert mrml_glue.first_landmarks_node(mrml.scene) is hand_made


# --- 5. localization computed once (in the segmentation job) and reused ---------------------------------


def _registration_must_not_run(*args, **kwargs):
    raise AssertionError("the template registration ran again")


def test_plan_reuses_the_segmentation_jobs_localization(module, mrml, fake_segment, sample_case, monkeypatch):
    from DBSSegmentationLogic.segmentation import localization

    mri, _labels, landmarks = sample_case
    located = localization.from_user_landmarks(landmarks["ac"], landmarks["pc"], landmarks["midline"]).to_dict()
    located["method"] = "registration"
    monkeypatch.setenv("FAKE_REPORT", json.dumps({"structures": [], "localization": located}))
    monkeypatch.setattr(localization, "register_to_template", _registration_must_not_run)
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")

    segmentation = logic.segment(mri_node, None, device="cpu", caseName="Sample", command=fake_segment)
    plan = logic.planCase(mri_node, segmentation, None, module.case_pipeline.PlanSettings(), "Sample")

    assert plan["localization"] == located
    assert "reused" in plan["landmark_source"]
    np.testing.assert_allclose(plan["acpc"]["ac_ras"], located["ac_ras"], atol=0.01)
    assert [t["name"] for t in plan["trajectories"]] == ["L STN", "R STN"]


def test_plan_without_points_or_localization_asks_instead_of_registering(module, mrml, sample_case, monkeypatch):
    from DBSSegmentationLogic.segmentation import localization

    monkeypatch.setattr(localization, "register_to_template", _registration_must_not_run)
    mri, labels, _landmarks = sample_case
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    hand_made = case_pipeline.segmentation_to_scene(mrml.scene, "Sample", labels, mri_node, show_3d=False)

    with pytest.raises(DBSInputError, match="AC, PC and the midline point, or segment the MRI first"):
        module.DBSTargetingLogic().planCase(mri_node, hand_made, None, module.case_pipeline.PlanSettings(), "Sample")


# --- real frame, trajectory transforms ------------------------------------------------------------------


def _rigid_matrix(angle_deg: float, axis: int, translation) -> np.ndarray:
    angle = np.radians(angle_deg)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    matrix = np.eye(4)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    matrix[:3, 3] = translation
    return matrix


def test_real_frame_from_a_transform_node_matches_the_command_line_with_its_file(module, mrml, tmp_path):
    """A transform node that moves the image into the frame, saved by Slicer's own storage node, gives the
    same Leksell X/Y/Z, ring and arc in the module as `dbs-plan frame --image-to-frame` with the file."""
    image_to_frame = _rigid_matrix(12.0, 2, [4.0, -7.5, 10.0]) @ _rigid_matrix(-5.0, 0, [0, 0, 0])
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Frame registration")
    transform.SetMatrixTransformToParent(mrml_glue.vtk_matrix_from_array(image_to_frame))
    storage = mrml.scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(tmp_path / "frame.tfm"))
    assert storage.WriteData(transform)
    points = {"AC": (0.5, 14.0, -2.0), "PC": (0.0, -11.0, 0.5), "midline": (0.2, 2.0, 40.0),
              "target": (-11.0, -1.0, -5.0), "entry": (-38.0, 25.0, 58.0)}
    markups = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Points")
    for label, ras in points.items():
        markups.AddControlPoint(vtk.vtkVector3d(*ras), label)
    logic = module.DBSTargetingLogic()

    in_module = logic.computeFramePlan(markups, mounting="lateral-left", imageToFrame=logic.frameSpace(transform)).to_dict()
    command = [sys.executable, "-m", "DBSSegmentationLogic", "frame", "--mounting", "lateral-left",
               "--image-to-frame", str(tmp_path / "frame.tfm"), "--json", str(tmp_path / "frame.json")]
    for label, ras in points.items():
        command += [f"--{label.lower()}", *map(str, ras)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    on_command_line = json.loads((tmp_path / "frame.json").read_text())

    expected = 100 + np.array([-1, 1, -1]) * (image_to_frame[:3, :3] @ np.array(points["target"]) + image_to_frame[:3, 3])
    np.testing.assert_allclose([in_module["target"]["leksell"][k] for k in ("X_mm", "Y_mm", "Z_mm")], expected, atol=1e-3)
    for key in ("X_mm", "Y_mm", "Z_mm"):
        assert in_module["target"]["leksell"][key] == pytest.approx(on_command_line["target"]["leksell"][key], abs=1e-3)
    assert in_module["ring_deg"] == pytest.approx(on_command_line["ring_deg"], abs=1e-3)
    assert in_module["arc_deg"] == pytest.approx(on_command_line["arc_deg"], abs=1e-3)
    virtual = logic.computeFramePlan(markups, mounting="lateral-left").to_dict()
    assert abs(virtual["target"]["leksell"]["X_mm"] - in_module["target"]["leksell"]["X_mm"]) > 1.0  # the frame matters


def test_mri_under_the_frame_transform_is_not_transformed_twice(mrml):
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Frame registration")
    transform.SetMatrixTransformToParent(mrml_glue.vtk_matrix_from_array(_rigid_matrix(8.0, 1, [3.0, 2.0, 1.0])))
    mri = volume_node_from_volume(mrml.scene, Volume(np.zeros((4, 4, 4), np.float32), np.eye(4)), "MRI")
    np.testing.assert_allclose(mrml_glue.frame_space_from_transform_node(transform, mri).image_to_frame_ras,
                               _rigid_matrix(8.0, 1, [3.0, 2.0, 1.0]), atol=1e-9)
    mri.SetAndObserveTransformNodeID(transform.GetID())  # the MRI shown in the frame: world RAS is frame RAS
    np.testing.assert_allclose(mrml_glue.frame_space_from_transform_node(transform, mri).image_to_frame_ras, np.eye(4))
    scaled = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Scaled")
    scaled.SetMatrixTransformToParent(mrml_glue.vtk_matrix_from_array(np.diag([1.1, 1.0, 1.0, 1.0])))
    with pytest.raises(DBSInputError, match="not rigid"):
        mrml_glue.frame_space_from_transform_node(scaled)


def test_plan_in_a_real_frame_is_labelled_and_handed_to_postop(module, mrml, fake_segment, sample_case):
    mri, _labels, landmarks = sample_case
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    points = _landmarks_node(mrml.scene, landmarks)
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Frame registration")
    image_to_frame = _rigid_matrix(-6.0, 2, [2.0, 30.0, -15.0])
    transform.SetMatrixTransformToParent(mrml_glue.vtk_matrix_from_array(image_to_frame))
    segmentation = logic.segment(mri_node, points, device="cpu", caseName="Sample", command=fake_segment)

    plan = logic.planCase(mri_node, segmentation, points, module.case_pipeline.PlanSettings(), "Sample",
                          imageToFrameTransform=transform)

    np.testing.assert_allclose(plan["image_to_frame_ras"], image_to_frame, atol=1e-9)
    left = plan["trajectories"][0]
    expected = 100 + np.array([-1, 1, -1]) * (image_to_frame[:3, :3] @ np.array(left["target_ras"]) + image_to_frame[:3, 3])
    np.testing.assert_allclose(left["target_leksell"], expected, atol=1e-3)
    rows = plan_nodes.table_rows(mrml.scene.GetFirstNodeByName(plan_nodes.TABLE_NODE))
    assert rows[0]["Frame"] == "real frame (transform node 'Frame registration')"
    job = case_pipeline.postop_job(plan, mri_node, mri_node)  # what the post-op command gets as plan.json
    assert job.plan["image_to_frame_ras"] == plan["image_to_frame_ras"]
    virtual = logic.planCase(mri_node, segmentation, points, module.case_pipeline.PlanSettings(), "Sample")
    assert plan_nodes.table_rows(mrml.scene.GetFirstNodeByName(plan_nodes.TABLE_NODE))[0]["Frame"].startswith("virtual frame")
    assert "image_to_frame_ras" not in virtual


def test_a_slice_view_resliced_along_a_trajectory_looks_down_the_probe(mrml):
    plan = _synthetic_plan_dict()
    nodes = case_pipeline.plan_to_scene(mrml.scene, "Case", plan)
    slice_node = mrml.scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
    trajectory = plan["trajectories"][0]

    plan_nodes.reslice_along_trajectory(slice_node, nodes["transforms"][0])

    slice_to_ras = mrml_glue.matrix_from_vtk(slice_node.GetSliceToRAS())
    direction = np.subtract(trajectory["entry_ras"], trajectory["target_ras"])
    np.testing.assert_allclose(slice_to_ras[:3, 2], direction / np.linalg.norm(direction), atol=1e-6)
    np.testing.assert_allclose(slice_to_ras[:3, 3], trajectory["target_ras"], atol=1e-6)
    assert abs(slice_to_ras[:3, 0] @ slice_to_ras[:3, 2]) < 1e-9 and slice_to_ras[0, 0] > 0.5  # x stays rightwards


# --- uncertainty map and quality flags ---------------------------------------------------------------


def test_uncertainty_map_and_flags_reach_the_user(module, mrml, fake_segment, sample_case, tmp_path, monkeypatch):
    from DBSSegmentationLogic.io.volumes import write_volume

    mri, labels, _landmarks = sample_case
    uncertainty = Volume((labels.array > 0).astype(np.float32) * 0.25, labels.ijk_to_ras)
    write_volume(uncertainty, tmp_path / "uncertainty.nii.gz")
    report = {"structures": [
        {"name": "STN_left", "flags": ["uncertain", "fallback_atlas"], "confidence": 0.41},
        {"name": "RN_right", "flags": ["fragmented"]},
        {"name": "GPi_left", "flags": [], "confidence": 0.93}]}
    monkeypatch.setenv("FAKE_UNCERTAINTY", str(tmp_path / "uncertainty.nii.gz"))
    monkeypatch.setenv("FAKE_REPORT", json.dumps(report))
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    composites = [mrml.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]

    job = logic.startSegmentation(mri_node, None, "cpu", command=fake_segment)
    job.wait()
    segmentation = logic.finishSegmentation(job, mri_node, "Sample", showUncertainty=True)

    overlay = case_pipeline.uncertainty_node(mrml.scene, "Sample")
    assert overlay is not None and overlay.GetName() == "Structures uncertainty"
    assert float(mrml_glue.volume_from_volume_node(overlay).array.max()) == pytest.approx(0.25)
    assert all(c.GetForegroundVolumeID() == overlay.GetID() and c.GetForegroundOpacity() == pytest.approx(0.4)
               for c in composites)
    assert case_pipeline.segmentation_warnings(case_pipeline.segmentation_report(segmentation)) == [
        "STN_left: uncertain, atlas shape (not seen in the image) (confidence 0.41)",
        "RN_right: fragmented (pieces outside the main body)"]
    mrml.scene.RemoveNode(mri_node)  # the panel never preselects the module's own map as the MRI
    assert mrml_glue.first_input_volume(mrml.scene) is None
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    assert mrml_glue.first_input_volume(mrml.scene) is mri_node

    monkeypatch.delenv("FAKE_UNCERTAINTY")  # a command that writes no map: tolerated, the stale map goes
    monkeypatch.setenv("FAKE_REPORT", json.dumps({"structures": []}))
    logic.segment(mri_node, None, device="cpu", caseName="Sample", command=fake_segment)
    assert case_pipeline.uncertainty_node(mrml.scene, "Sample") is None
    assert case_pipeline.segmentation_warnings(case_pipeline.segmentation_report(segmentation)) == []


# --- Extensions Index entry -----------------------------------------------------------------------------

#: The categories the Extensions Index's checks accept (ACCEPTED_EXTENSION_CATEGORIES of
#: Slicer/ExtensionsIndex scripts/check_description_files.py), the ones a DBS planning tool could use.
ACCEPTED_CATEGORIES_SUBSET = {"Neuroimaging", "Netstim", "Planning", "Segmentation", "IGT", "Quantification"}


def test_extensions_index_entry_is_valid_and_matches_cmake():
    jsonschema = pytest.importorskip("jsonschema")
    entry = json.loads((REPO_ROOT / "docs" / "DBSTargeting.json").read_text())
    schema_name = entry["$schema"].split("/")[-1].split("#")[0]
    schema = json.loads((Path(__file__).with_name("schemas") / schema_name).read_text())

    jsonschema.validate(entry, schema)

    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    category = re.search(r'set\(EXTENSION_CATEGORY "([^"]+)"\)', cmake).group(1)
    assert entry["category"] == category and category in ACCEPTED_CATEGORIES_SUBSET
    contributors = re.search(r'set\(EXTENSION_CONTRIBUTORS "([^"]+)"\)', cmake).group(1)
    assert contributors != "DBS Targeting contributors"
    minimum = re.search(r"find_package\(Slicer (\d+\.\d+) REQUIRED\)", cmake).group(1)
    assert minimum == "5.10" and f"Slicer {minimum}" in (REPO_ROOT / "README.md").read_text()
    assert "slicer" in entry["scm_url"].lower()  # the Index asks for "Slicer" in the repository name
    module_file = (REPO_ROOT / "DBSTargeting" / "DBSTargeting.py").read_text()
    assert "DBS Targeting contributors" not in module_file


def _synthetic_plan_dict() -> dict:
    from test_scene_results import synthetic_plan

    return synthetic_plan()


# --- frame registration (issue #14) in the background, into the real-frame input ------------------------


def test_frame_registration_job_gives_the_transform_node_and_residual_table(module, mrml, tmp_path):
    """A synthetic frame CT with a known pose: the background `frame-register` run gives the transform node
    "Image to frame" that planning reads as the real frame (matching the known pose), and the residual table."""
    pytest.importorskip("matplotlib", reason="frame-register draws its figure")
    from DBSSegmentationLogic.frame_registration import load_localizer
    from DBSSegmentationLogic.frame_registration.rigid_fit import transform_error_mm
    from DBSSegmentationLogic.simulation.frame_ct import make_frame_image

    frame = make_frame_image(load_localizer("leksell-g"), in_plane_mm=2.0, slice_mm=2.0, tilt_deg=(5.0, -3.0, 2.0),
                             translation_mm=(4.0, -6.0, 7.0), speckles=300, seed=7)
    image_node = volume_node_from_volume(mrml.scene, frame.volume, "Frame CT")
    logic = module.DBSTargetingLogic()
    progress = []

    nodes = logic.frameRegistration(image_node, "leksell-g", "Sample",
                                    onLine=lambda line: line.progress and progress.append(line.progress[0]))

    assert progress and progress[-1] == 1.0
    assert nodes["transform"].GetName() == case_pipeline.FRAME_TRANSFORM_NODE
    frame_space = logic.frameSpace(nodes["transform"])
    worst_mm, _ = transform_error_mm(frame_space.image_to_frame_ras, frame.image_to_frame_ras)
    assert worst_mm < 0.5  # over the ball the transform error is measured on
    rows = plan_nodes.table_rows(nodes["table"])
    assert len(rows) > 100 and max(row["Residual (mm)"] for row in rows) < 3.0
    assert "RMS residual" in nodes["table"].GetDescription()
    again = logic.frameRegistration(image_node, "leksell-g", "Sample")  # re-run: the same transform, one table
    assert again["transform"] is nodes["transform"]
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1


def test_the_in_slicer_test_of_issue_12_runs_on_real_mrml(module, mrml, monkeypatch):
    """DBSTargetingTest.test_ReplanReplacesThePlanAndCodesTheSegments (run by Slicer's ctest) on slicer-core."""
    test = module.DBSTargetingTest("test_ReplanReplacesThePlanAndCodesTheSegments")
    monkeypatch.setattr(test, "delayDisplay", lambda *args, **kwargs: None, raising=False)
    test.test_ReplanReplacesThePlanAndCodesTheSegments()


def test_batch_with_a_frame_transform_file_plans_in_the_real_frame_as_the_command_line(module, mrml, make_mrml, tmp_path, capsys):
    """The transform file read by the batch script, the same file read by Slicer's own transform reader (a
    node the user loads), and `dbs-plan plan --image-to-frame`: one convention, the same Leksell target."""
    from DBSSegmentationLogic.geometry.frame import (
        FrameSpace,
        write_image_to_frame_transform,
    )

    image_to_frame = _rigid_matrix(9.0, 2, [-3.0, 12.0, 5.0])
    tfm = write_image_to_frame_transform(FrameSpace.from_matrix(image_to_frame), tmp_path / "image_to_frame.tfm")
    batch = _batch_script()
    args = batch.parse_arguments([
        "--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--labels", str(SAMPLE / "sample_labels.nii.gz"),
        "--markups", str(SAMPLE / "landmarks.mrk.json"), "--out", str(tmp_path / "out"), "--image-to-frame", str(tfm)])

    assert batch.run(args, mrml.scene, module.DBSTargetingLogic(), module.case_pipeline) == 0, capsys.readouterr().err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    np.testing.assert_allclose(plan["image_to_frame_ras"], image_to_frame, atol=1e-6)

    loaded = make_mrml()  # the same file as Slicer's transform reader makes it into a node
    storage = loaded.scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(tfm))
    node = loaded.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "loaded")
    assert storage.ReadData(node)
    np.testing.assert_allclose(mrml_glue.frame_space_from_transform_node(node).image_to_frame_ras, image_to_frame, atol=1e-6)

    command = [sys.executable, "-m", "DBSSegmentationLogic", "plan", "--mri", str(SAMPLE / "sample_t1w.nii.gz"),
               "--labels", str(SAMPLE / "sample_labels.nii.gz"), "--markups", str(SAMPLE / "landmarks.mrk.json"),
               "--image-to-frame", str(tfm), "--out", str(tmp_path / "cli")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "matplotlib" in done.stderr:
        pytest.skip("dbs-plan plan needs matplotlib for its figures")
    assert done.returncode == 0, done.stderr[-2000:]
    on_command_line = json.loads((tmp_path / "cli" / "plan.json").read_text())
    for ours, theirs in zip(plan["trajectories"], on_command_line["trajectories"]):
        np.testing.assert_allclose(ours["target_leksell"], theirs["target_leksell"], atol=0.01)
        assert ours["ring_deg"] == pytest.approx(theirs["ring_deg"], abs=0.01)


def test_panel_ui_file_matches_the_widget_and_the_parameter_node(module):
    """What Slicer would only find at run time: every widget the code uses exists in the .ui, every node
    selector gets the scene, every SlicerParameterName is a parameter of the module."""
    import xml.dom.minidom

    ui_path = REPO_ROOT / "DBSTargeting" / "Resources" / "UI" / "DBSTargeting.ui"
    document = xml.dom.minidom.parse(str(ui_path))
    widgets = {w.getAttribute("name"): w for w in document.getElementsByTagName("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", (REPO_ROOT / "DBSTargeting" / "DBSTargeting.py").read_text()))
    assert used - set(widgets) == set()
    receivers = {r.firstChild.data for r in document.getElementsByTagName("receiver")}
    selectors = {name for name, w in widgets.items() if w.getAttribute("class") == "qMRMLNodeComboBox"}
    assert selectors - receivers == set()
    parameters = set(module.DBSTargetingParameterNode.__annotations__)
    bound = set()
    for widget in widgets.values():
        for prop in widget.getElementsByTagName("property"):
            if prop.getAttribute("name") == "SlicerParameterName":
                bound.add(prop.getElementsByTagName("string")[0].firstChild.data)
    assert bound - parameters == set()
    assert {"outputSegmentation", "imageToFrameTransform", "showUncertainty", "frameImage", "frameLocalizer"} <= bound
