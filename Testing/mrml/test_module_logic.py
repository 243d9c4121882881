"""DBSTargetingLogic (the module file's logic class) against real MRML classes, outside the Slicer app.

Slicer's Qt-side Python modules (qt, ctk, ScriptedLoadableModule, the parameter node wrapper) are not
part of slicer-core: they are replaced by minimal stand-ins here, and ``slicer.mrmlScene`` is a bare
scene. The logic's segmentation runs the stand-in segment command of ``test_case_pipeline``.
"""
from __future__ import annotations

import json
import sys
import time
import types
import unittest

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
pytest.importorskip("scipy", reason="planning needs scipy and scikit-image")
pytest.importorskip("skimage", reason="planning needs scipy and scikit-image")

from DBSTargetingLib import plan_nodes, scene_files, subject_hierarchy  # noqa: E402
from DBSTargetingLib.mrml_glue import markups_points_from_node, volume_node_from_volume  # noqa: E402
from DBSTargetingLib.segmentation_nodes import segment_names_and_colours  # noqa: E402
from test_case_pipeline import SAMPLE, fake_segment, sample_case  # noqa: E402,F401  (fixtures)


def _stand_in_modules() -> dict:
    class ScriptedLoadableModuleLogic:
        def getParameterNode(self):
            return None

    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    scripted.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {})
    scripted.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    scripted.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    scripted.ScriptedLoadableModuleTest = unittest.TestCase
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.Choice = lambda choices: tuple(choices)
    wrapper.parameterNodeWrapper = lambda cls: cls
    return {"qt": types.ModuleType("qt"), "ctk": types.ModuleType("ctk"),
            "slicer.ScriptedLoadableModule": scripted, "slicer.parameterNodeWrapper": wrapper}


@pytest.fixture
def module(mrml, monkeypatch):
    for name, stand_in in _stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(slicer, "mrmlScene", mrml.scene, raising=False)
    monkeypatch.delitem(sys.modules, "DBSTargeting", raising=False)
    import DBSTargeting

    yield DBSTargeting
    sys.modules.pop("DBSTargeting", None)


def _landmarks_node(scene, landmarks):
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Landmarks")
    for label, name in (("AC", "ac"), ("PC", "pc"), ("midline", "midline")):
        node.AddControlPoint(vtk.vtkVector3d(*landmarks[name]), label)
    return node


def test_logic_segments_plans_and_saves_a_case(module, mrml, fake_segment, sample_case, tmp_path):
    mri, labels, landmarks = sample_case
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    points = _landmarks_node(mrml.scene, landmarks)
    progress = []

    segmentation = logic.segment(mri_node, points, device="cpu", caseName="Sample", command=fake_segment,
                                 onLine=lambda line: line.progress and progress.append(line.progress[0]))
    plan = logic.planCase(mri_node, segmentation, points, module.case_pipeline.PlanSettings(target_kind="stn"), "Sample")
    paths = logic.saveCase(plan, tmp_path, "Sample")

    assert progress == [0.0, 0.4, 1.0]
    assert {"STN_left", "STN_right", "RN_left", "RN_right"} <= set(segment_names_and_colours(segmentation))
    assert subject_hierarchy.folder_of(mrml.scene, segmentation) == "Sample"
    assert [t["name"] for t in plan["trajectories"]] == ["L STN", "R STN"]
    targets = markups_points_from_node(mrml.scene.GetFirstNodeByName(plan_nodes.TARGETS_NODE))
    for trajectory in plan["trajectories"]:
        np.testing.assert_allclose(targets[trajectory["name"]], trajectory["target_ras"], atol=0.01, rtol=0)
    assert json.loads(paths["plan"].read_text())["trajectories"][0]["name"] == "L STN"
    assert paths["scene"].name == "Sample.mrb" and paths["scene"].stat().st_size > 0
    text = logic.casePlanText(plan)
    assert "L STN: X" in text and "ring" in text


def test_logic_cancel_leaves_the_scene_unchanged(module, mrml, fake_segment, sample_case, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP_S", "60")
    logic = module.DBSTargetingLogic()
    mri_node = volume_node_from_volume(mrml.scene, sample_case[0], "MRI")
    before = mrml.scene.GetNumberOfNodes()

    job = logic.startSegmentation(mri_node, None, "cpu", command=fake_segment)
    deadline = time.monotonic() + 30
    while job.progress[0] < 0.4:
        assert time.monotonic() < deadline and job.result is None
        job.poll()
        time.sleep(0.02)
    started = time.monotonic()
    job.cancel()

    assert time.monotonic() - started < 2.0
    assert job.result.cancelled and not job.scratch.exists()
    assert mrml.scene.GetNumberOfNodes() == before


def test_logic_refuses_missing_inputs_with_a_reason(module, mrml):
    from DBSSegmentationLogic.io.exceptions import DBSInputError

    logic = module.DBSTargetingLogic()
    with pytest.raises(DBSInputError, match="pre-operative MRI"):
        logic.startSegmentation(None)
    with pytest.raises(DBSInputError, match="segmentation"):
        logic.planCase(None, None, None, module.case_pipeline.PlanSettings())
    logic.ensureDependencies(interactive=False, needsTorch=False)  # scipy, scikit-image, SimpleITK are here


def _batch_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "DBSTargeting" / "Resources" / "Batch" / "dbs_batch.py"
    spec = importlib.util.spec_from_file_location("dbs_batch", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_batch_script_writes_a_scene_that_reloads_within_0_01_mm_of_plan_json(module, mrml, make_mrml, tmp_path, capsys):
    batch = _batch_script()
    args = batch.parse_arguments([
        "--", "--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--labels", str(SAMPLE / "sample_labels.nii.gz"),
        "--markups", str(SAMPLE / "landmarks.mrk.json"), "--out", str(tmp_path / "out"), "--case", "Sample 1",
    ])

    code = batch.run(args, mrml.scene, module.DBSTargetingLogic(), module.case_pipeline)

    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Sample_1.mrb", "plan.json"]
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    reloaded = make_mrml()
    scene_files.load_mrb(reloaded.scene, tmp_path / "out" / "Sample_1.mrb")
    scene = reloaded.scene
    for name in ("MRI", "Landmarks", "Structures", plan_nodes.TARGETS_NODE, plan_nodes.INDIRECT_NODE,
                 plan_nodes.TABLE_NODE, "L STN trajectory", "R STN trajectory", "L STN trajectory transform"):
        node = scene.GetFirstNodeByName(name)
        assert node is not None, name
        assert subject_hierarchy.folder_of(scene, node) == "Sample 1", name
    targets = markups_points_from_node(scene.GetFirstNodeByName(plan_nodes.TARGETS_NODE))
    for trajectory in plan["trajectories"]:
        np.testing.assert_allclose(targets[trajectory["name"]], trajectory["target_ras"], atol=0.01, rtol=0)
        line = markups_points_from_node(scene.GetFirstNodeByName(trajectory["name"] + plan_nodes.TRAJECTORY_SUFFIX))
        np.testing.assert_allclose(line["entry"], trajectory["entry_ras"], atol=0.01, rtol=0)
    assert "L STN: X" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--preop-ct", "ct.nii.gz"], "only with --ct"), (["--lead-model", "medtronic-3387"], "only with --ct"),
     (["--d-ratio", "0.1"], "both the D and the E ratio")],
)
def test_batch_script_fails_with_exit_code_2_and_one_line(module, mrml, tmp_path, capsys, extra, message):
    batch = _batch_script()
    args = batch.parse_arguments(["--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--out", str(tmp_path / "out"), *extra])

    assert batch.run(args, mrml.scene, module.DBSTargetingLogic(), module.case_pipeline) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_script_bad_options_give_exit_code_2():
    assert _batch_script().main(["--", "--out", "x"]) == 2  # --mri missing
