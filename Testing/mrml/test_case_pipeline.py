"""The module's case pipeline against real MRML classes: background segmentation through the process
runner (a stand-in for the model, so no trained network is needed), cancel leaving no node and no
file, planning on the bundled sample case, and a saved scene that reloads with every node and every
coordinate within 0.01 mm of plan.json (issue #6, "must hold")."""
from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
pytest.importorskip("scipy", reason="planning needs scipy and scikit-image")
pytest.importorskip("skimage", reason="planning needs scipy and scikit-image")

from DBSTargetingLib import (  # noqa: E402
    case_pipeline,
    plan_nodes,
    scene_files,
    segmentation_nodes,
    subject_hierarchy,
)
from DBSTargetingLib.mrml_glue import (  # noqa: E402
    markups_points_from_node,
    volume_from_volume_node,
    volume_node_from_volume,
)
from DBSTargetingLib.segmentation_job import SegmentationJob  # noqa: E402

from DBSSegmentationLogic.io.exceptions import DBSInputError  # noqa: E402
from DBSSegmentationLogic.io.markups import find_landmarks, read_markups_points  # noqa: E402
from DBSSegmentationLogic.io.volumes import read_volume  # noqa: E402

TOLERANCE_MM = 0.01
SAMPLE = Path(__file__).resolve().parents[2] / "Resources" / "SampleCase"

#: Stands in for ``python -m DBSSegmentationLogic segment``: same options, PROGRESS lines and atomic
#: outputs; "segments" by copying the label map named in $FAKE_LABELS after $FAKE_SLEEP_S seconds.
FAKE_SEGMENT = textwrap.dedent(
    """
    import argparse, json, os, signal, sys, time
    from DBSSegmentationLogic.io.volumes import read_volume, write_volume

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    parser = argparse.ArgumentParser()
    for option in ("--input", "--output", "--json", "--device", "--threads"):
        parser.add_argument(option)
    for option in ("--ac", "--pc", "--midline"):
        parser.add_argument(option, nargs=3, type=float)
    args = parser.parse_args()
    print("PROGRESS 0.00 reading", flush=True)
    mri = read_volume(args.input)
    print(f"device {args.device}, landmarks given: {args.ac is not None}", flush=True)
    print("PROGRESS 0.40 segmenting", flush=True)
    time.sleep(float(os.environ.get("FAKE_SLEEP_S", "0")))
    labels = read_volume(os.environ["FAKE_LABELS"])
    assert labels.array.shape == mri.array.shape
    write_volume(labels, args.output)
    if os.environ.get("FAKE_UNCERTAINTY"):  # the map issue #10 adds: <labels stem>_uncertainty beside the labels
        write_volume(read_volume(os.environ["FAKE_UNCERTAINTY"]), args.output.replace(".nii.gz", "_uncertainty.nii.gz"))
    with open(args.json + ".tmp", "w") as handle:
        json.dump(json.loads(os.environ.get("FAKE_REPORT", '{"structures": []}')), handle)
    os.replace(args.json + ".tmp", args.json)
    print("PROGRESS 1.00 done", flush=True)
    """
)


@pytest.fixture
def fake_segment(tmp_path, monkeypatch):
    script = tmp_path / "fake_segment.py"
    script.write_text(FAKE_SEGMENT)
    monkeypatch.setenv("FAKE_LABELS", str(SAMPLE / "sample_labels.nii.gz"))
    return [sys.executable, str(script)]


@pytest.fixture
def sample_case():
    if not (SAMPLE / "sample_t1w.nii.gz").is_file():
        pytest.skip("no bundled sample case")
    mri = read_volume(SAMPLE / "sample_t1w.nii.gz")
    labels = read_volume(SAMPLE / "sample_labels.nii.gz")
    landmarks = find_landmarks(read_markups_points(SAMPLE / "landmarks.mrk.json"))
    return mri, labels, {name: landmarks[name] for name in ("ac", "pc", "midline")}


def _scene_census(scene) -> list:
    return sorted((scene.GetNthNode(n).GetClassName(), scene.GetNthNode(n).GetName()) for n in range(scene.GetNumberOfNodes()))


def test_blocking_segmentation_through_the_child_process(mrml, fake_segment, sample_case):
    mri, labels, landmarks = sample_case
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    lines = []

    result = case_pipeline.run_segmentation(mri_node, device="cpu", landmarks_ras=landmarks, on_line=lines.append, command=fake_segment)

    np.testing.assert_array_equal(result.array, labels.array)
    np.testing.assert_allclose(result.ijk_to_ras, mri.ijk_to_ras, atol=1e-4)
    assert [line.progress for line in lines if line.progress] == [(0.0, "reading"), (0.4, "segmenting"), (1.0, "done")]
    assert "device cpu, landmarks given: True" in [line.text for line in lines]


def test_failed_segmentation_raises_with_the_childs_reason(mrml, fake_segment, sample_case, monkeypatch):
    monkeypatch.setenv("FAKE_LABELS", "/no/such/labels.nii.gz")
    mri_node = volume_node_from_volume(mrml.scene, sample_case[0], "MRI")
    with pytest.raises(DBSInputError, match="segmentation failed"):
        case_pipeline.run_segmentation(mri_node, command=fake_segment)


def test_the_input_gate_refuses_in_the_module_before_any_child_runs(mrml, sample_case, tmp_path):
    """The module runs the logic's input gate itself: a constant MRI or a sheared label map is refused
    with the gate's one line before a child process starts or a plan is computed."""
    mri, labels, landmarks = sample_case
    started = tmp_path / "child-started"
    constant = volume_node_from_volume(mrml.scene, type(mri)(np.full(mri.array.shape, 7, np.int16), mri.ijk_to_ras), "Flat")
    with pytest.raises(DBSInputError, match="the MRI is constant"):
        case_pipeline.run_segmentation(constant, command=[sys.executable, "-c", f"open({str(started)!r}, 'w').close()"])
    assert not started.exists()

    sheared = labels.ijk_to_ras.copy()
    sheared[:3, 1] += 0.2 * sheared[:3, 0]  # the second voxel axis leans on the first
    with pytest.raises(DBSInputError, match="the segmentation has a sheared grid"):
        case_pipeline.plan_dict(type(labels)(labels.array, sheared), landmarks, case_pipeline.PlanSettings())


def test_cancel_ends_the_child_within_2_s_and_leaves_no_node_and_no_file(mrml, fake_segment, sample_case, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP_S", "60")
    mri_node = volume_node_from_volume(mrml.scene, sample_case[0], "MRI")
    before = _scene_census(mrml.scene)
    job = SegmentationJob(volume_from_volume_node(mri_node), command=fake_segment, grace_s=0.5).start()
    scratch = job.scratch
    deadline = time.monotonic() + 30
    while job.progress[0] < 0.4:  # as the GUI timer does: poll until the child is segmenting
        assert time.monotonic() < deadline and job.result is None, [line.text for line in job.runner.log]
        job.poll()
        time.sleep(0.02)

    started = time.monotonic()
    job.cancel()
    elapsed_s = time.monotonic() - started

    assert elapsed_s < 2.0
    assert job.result.cancelled
    assert not scratch.exists()  # the input copy and any partial output are gone
    assert _scene_census(mrml.scene) == before


def test_plan_on_the_sample_case_matches_the_command_line_logic(sample_case):
    _mri, labels, landmarks = sample_case

    plan = case_pipeline.plan_dict(labels, landmarks, case_pipeline.PlanSettings(target_kind="stn"))

    assert [t["name"] for t in plan["trajectories"]] == ["L STN", "R STN"]
    left = plan["trajectories"][0]
    assert left["side"] == "left" and left["target_ras"][0] < plan["acpc"]["mcp_ras"][0]
    assert plan["landmark_source"] == "user"
    with pytest.raises(DBSInputError, match="both the D and the E ratio"):
        case_pipeline.PlanSettings(d_ratio=0.1)


def test_case_in_the_scene_saved_and_reloaded_within_0_01_mm_of_plan_json(mrml, make_mrml, fake_segment, sample_case, tmp_path):
    mri, _labels, landmarks = sample_case
    mri_node = volume_node_from_volume(mrml.scene, mri, "MRI")
    subject_hierarchy.place_in_folder(mrml.scene, mri_node, subject_hierarchy.case_folder(mrml.scene, "Sample"))

    labels = case_pipeline.run_segmentation(mri_node, landmarks_ras=landmarks, command=fake_segment)
    case_pipeline.segmentation_to_scene(mrml.scene, "Sample", labels, mri_node)
    plan = case_pipeline.plan_dict(labels, landmarks, case_pipeline.PlanSettings(target_kind="stn"))
    case_pipeline.plan_to_scene(mrml.scene, "Sample", plan)
    paths = case_pipeline.save_case(mrml.scene, plan, tmp_path / "out", "Sample")

    written = json.loads(paths["plan"].read_text())
    reloaded = make_mrml()
    scene_files.load_mrb(reloaded.scene, paths["scene"])
    scene = reloaded.scene

    def node(name):
        found = scene.GetFirstNodeByName(name)
        assert found is not None, f"{name} missing from the reloaded scene"
        assert subject_hierarchy.folder_of(scene, found) == "Sample", name
        return found

    segments = segmentation_nodes.segment_names_and_colours(node(case_pipeline.SEGMENTATION_NODE))
    assert {"STN_left", "STN_right", "RN_left", "RN_right"} <= set(segments)
    for name in segments:  # one 3D representation per structure: the closed surface, no exported model
        assert scene.GetFirstNodeByName(name) is None, name
    assert node(case_pipeline.SEGMENTATION_NODE).GetDisplayNode().GetPreferredDisplayRepresentationName3D() == "Closed surface"
    transform = node("L STN" + plan_nodes.TRANSFORM_SUFFIX)
    np.testing.assert_allclose(transform.GetMatrixTransformToParent().GetElement(0, 3),
                               written["trajectories"][0]["target_ras"][0], atol=TOLERANCE_MM)
    targets = markups_points_from_node(node(plan_nodes.TARGETS_NODE))
    rows = {row["Point"]: row for row in plan_nodes.table_rows(node(plan_nodes.TABLE_NODE))}
    for trajectory in written["trajectories"]:
        np.testing.assert_allclose(targets[trajectory["name"]], trajectory["target_ras"], atol=TOLERANCE_MM, rtol=0)
        line = markups_points_from_node(node(trajectory["name"] + plan_nodes.TRAJECTORY_SUFFIX))
        np.testing.assert_allclose(line["entry"], trajectory["entry_ras"], atol=TOLERANCE_MM, rtol=0)
        np.testing.assert_allclose(line["target"], trajectory["target_ras"], atol=TOLERANCE_MM, rtol=0)
        row = rows[f"{trajectory['name']} target"]
        for columns, key in (
            (("R (mm)", "A (mm)", "S (mm)"), "target_ras"),
            (("AC-PC x (mm)", "AC-PC y (mm)", "AC-PC z (mm)"), "target_acpc"),
            (("Leksell X (mm)", "Leksell Y (mm)", "Leksell Z (mm)"), "target_leksell"),
        ):
            np.testing.assert_allclose([row[c] for c in columns], trajectory[key], atol=TOLERANCE_MM, rtol=0)
        assert row["Ring (deg)"] == pytest.approx(trajectory["ring_deg"], abs=0.01)
        assert row["Arc (deg)"] == pytest.approx(trajectory["arc_deg"], abs=0.01)
    indirect = markups_points_from_node(node(plan_nodes.INDIRECT_NODE))
    for kind, sides in written["indirect"].items():
        for side, point in sides.items():
            np.testing.assert_allclose(indirect[plan_nodes.indirect_label(side, kind)], point["ras"], atol=TOLERANCE_MM, rtol=0)
    landmarks_back = markups_points_from_node(node(plan_nodes.LANDMARKS_NODE))
    np.testing.assert_allclose(landmarks_back["AC"], written["acpc"]["ac_ras"], atol=TOLERANCE_MM, rtol=0)
    assert json.loads(node(plan_nodes.TABLE_NODE).GetAttribute(plan_nodes.PLAN_ATTRIBUTE)) == written
