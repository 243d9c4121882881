"""Post-operative evaluation through the module logic, the case pipeline and the batch script, against
real MRML classes: the ``postop`` command runs in a child process through the process runner (a
stand-in that writes a known postop.json, so no CT fusion is computed here), with progress, cancel
leaving no node and no file, failures reported with the child's reason, and the batch script writing
postop.json beside plan.json and the nodes into the .mrb (issue #6)."""
from __future__ import annotations

import json
import sys
import textwrap
import time

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
pytest.importorskip("scipy", reason="planning needs scipy and scikit-image")
pytest.importorskip("skimage", reason="planning needs scipy and scikit-image")

from DBSTargetingLib import (  # noqa: E402
    case_pipeline,
    postop_job,
    postop_nodes,
    scene_files,
    subject_hierarchy,
)
from DBSTargetingLib.mrml_glue import volume_from_volume_node, volume_node_from_volume  # noqa: E402
from test_case_pipeline import SAMPLE, _scene_census  # noqa: E402
from test_module_logic import _batch_script, module  # noqa: E402,F401  (fixture)
from test_postop_nodes import CT_IJK_TO_RAS, assert_postop_in_scene, synthetic_postop  # noqa: E402
from test_scene_results import synthetic_plan  # noqa: E402

from DBSSegmentationLogic.io.exceptions import DBSInputError  # noqa: E402
from DBSSegmentationLogic.io.volumes import Volume, write_volume  # noqa: E402

#: Stands in for ``python -m DBSSegmentationLogic postop``: same options, PROGRESS lines, exit codes
#: and atomic output; "evaluates" by writing the postop.json named in $FAKE_POSTOP after $FAKE_SLEEP_S
#: seconds, or fails with exit code $FAKE_EXIT. It prints what it was given, for the tests to check.
FAKE_POSTOP = textwrap.dedent(
    """
    import argparse, json, os, signal, sys, time
    from DBSSegmentationLogic.io.volumes import read_volume

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    parser = argparse.ArgumentParser()
    for option in ("--plan", "--ct", "--mri", "--preop-ct", "--transform", "--lead-model", "--out"):
        parser.add_argument(option)
    args = parser.parse_args()
    print("PROGRESS 0.00 reading", flush=True)
    plan = json.load(open(args.plan))
    ct = read_volume(args.ct)
    print(f"inputs: mri={args.mri is not None} preop_ct={args.preop_ct is not None} "
          f"trajectories={len(plan['trajectories'])} lead={args.lead_model}", flush=True)
    print("ct origin " + " ".join(f"{v:.3f}" for v in ct.origin_ras), flush=True)
    print("PROGRESS 0.30 fusing", flush=True)
    time.sleep(float(os.environ.get("FAKE_SLEEP_S", "0")))
    code = int(os.environ.get("FAKE_EXIT", "0"))
    if code:
        print("error: no DBS lead found in the CT" if code == 2 else "internal error: boom", file=sys.stderr, flush=True)
        sys.exit(code)
    postop = json.load(open(os.environ["FAKE_POSTOP"]))
    postop["plan"], postop["ct"] = args.plan, args.ct
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, ".postop.json.tmp"), "w") as handle:
        json.dump(postop, handle)
    os.replace(os.path.join(args.out, ".postop.json.tmp"), os.path.join(args.out, "postop.json"))
    print("PROGRESS 1.00 done", flush=True)
    """
)


@pytest.fixture
def fake_postop(tmp_path, monkeypatch):
    script = tmp_path / "fake_postop.py"
    script.write_text(FAKE_POSTOP)
    result = tmp_path / "postop_result.json"
    result.write_text(json.dumps(synthetic_postop()))
    monkeypatch.setenv("FAKE_POSTOP", str(result))
    return [sys.executable, str(script)]


def _case_nodes(scene):
    mri = volume_node_from_volume(scene, Volume(np.zeros((8, 8, 8), np.float32), np.eye(4)), "MRI")
    ct = volume_node_from_volume(scene, Volume(np.full((6, 16, 16), -1000, np.int16), CT_IJK_TO_RAS), "Post-op CT")
    return mri, ct


def test_logic_evaluates_the_ct_in_a_child_process_and_shows_the_result(module, mrml, fake_postop):
    logic = module.DBSTargetingLogic()
    mri, ct = _case_nodes(mrml.scene)
    lines = []

    postop = logic.postop(mri, ct, synthetic_plan(), caseName="Case 7", onLine=lines.append, command=fake_postop)

    expected = dict(synthetic_postop(), plan="plan.json", ct="Post-op CT", mri="MRI")  # no scratch path survives
    assert postop == expected
    assert [line.progress for line in lines if line.progress] == [(0.0, "reading"), (0.3, "fusing"), (1.0, "done")]
    texts = [line.text for line in lines]
    assert "inputs: mri=True preop_ct=False trajectories=2 lead=None" in texts
    assert "ct origin -4.000 -5.000 -3.000" in texts
    assert_postop_in_scene(mrml.scene, expected, "Case 7")
    assert ct.GetParentTransformNode().GetName() == postop_nodes.TRANSFORM_NODE
    assert "L lead (medtronic-3389, automatic): error 1.2 mm" in logic.postopText(postop)

    # again, fused to a pre-operative CT: the CT goes to the child as loaded, not as fused last time
    preop = volume_node_from_volume(mrml.scene, Volume(np.zeros((4, 4, 4), np.int16), np.eye(4)), "Pre-op CT")
    lines.clear()
    again = logic.postop(mri, ct, synthetic_plan(), preop, caseName="Case 7", onLine=lines.append,
                         leadModel="boston-vercise-8", command=fake_postop)
    texts = [line.text for line in lines]
    assert "inputs: mri=True preop_ct=True trajectories=2 lead=boston-vercise-8" in texts
    assert "ct origin -4.000 -5.000 -3.000" in texts
    assert again == dict(expected, preop_ct="Pre-op CT")
    assert_postop_in_scene(mrml.scene, again, "Case 7")


def test_pipeline_blocking_run_returns_the_result_and_leaves_no_file(mrml, fake_postop, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR: every scratch folder lands in tmp_path/scratch
    mri, ct = _case_nodes(mrml.scene)

    postop = case_pipeline.run_postop(synthetic_plan(), ct, mri, sources={"ct": "/data/ct.nii.gz"}, command=fake_postop)

    assert postop == dict(synthetic_postop(), plan="plan.json", ct="/data/ct.nii.gz", mri="MRI")
    assert list((tmp_path / "scratch").iterdir()) == []
    assert mrml.scene.GetFirstNodeByName(postop_nodes.TABLE_NODE) is None  # plain data: the scene is the caller's


def test_logic_cancel_leaves_the_scene_unchanged_and_no_file(module, mrml, fake_postop, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP_S", "60")
    logic = module.DBSTargetingLogic()
    mri, ct = _case_nodes(mrml.scene)
    before = _scene_census(mrml.scene)

    job = logic.startPostop(mri, ct, synthetic_plan(), command=fake_postop)
    scratch = job.scratch
    deadline = time.monotonic() + 30
    while job.progress[0] < 0.3:  # as the GUI timer does
        assert time.monotonic() < deadline and job.result is None, [line.text for line in job.runner.log]
        job.poll()
        time.sleep(0.02)
    started = time.monotonic()
    job.cancel()

    assert time.monotonic() - started < 2.0
    assert job.result.cancelled and not scratch.exists()
    assert _scene_census(mrml.scene) == before
    assert ct.GetParentTransformNode() is None


@pytest.mark.parametrize(("code", "error", "message"), [
    (2, DBSInputError, "post-operative evaluation failed: error: no DBS lead found in the CT (exit code 2, bad input)"),
    (3, RuntimeError, "internal error: boom (exit code 3, internal failure)"),
])
def test_failures_carry_the_childs_reason_and_add_no_node(module, mrml, fake_postop, monkeypatch, code, error, message):
    monkeypatch.setenv("FAKE_EXIT", str(code))
    mri, ct = _case_nodes(mrml.scene)
    before = _scene_census(mrml.scene)

    with pytest.raises(error) as caught:
        module.DBSTargetingLogic().postop(mri, ct, synthetic_plan(), command=fake_postop)

    assert message in str(caught.value)
    assert _scene_census(mrml.scene) == before


def test_logic_refuses_missing_inputs_with_a_reason(module, mrml):
    logic = module.DBSTargetingLogic()
    mri, ct = _case_nodes(mrml.scene)
    with pytest.raises(DBSInputError, match="pre-operative MRI"):
        logic.startPostop(None, ct, synthetic_plan())
    with pytest.raises(DBSInputError, match="post-operative CT"):
        logic.startPostop(mri, None, synthetic_plan())
    with pytest.raises(DBSInputError, match="plan the case first"):
        logic.startPostop(mri, ct, None)
    with pytest.raises(DBSInputError, match="no trajectory"):
        logic.startPostop(mri, ct, dict(synthetic_plan(), trajectories=[]))
    with pytest.raises(DBSInputError, match="unknown lead model 'acme-9000'"):
        logic.startPostop(mri, ct, synthetic_plan(), leadModel="acme-9000")


def test_plan_kept_in_the_scene_is_found_for_post_op(mrml):
    plan = synthetic_plan()
    assert case_pipeline.plan_in_scene(mrml.scene, "Case 7") is None
    case_pipeline.plan_to_scene(mrml.scene, "Case 7", plan)
    assert case_pipeline.plan_in_scene(mrml.scene, "Case 7") == plan
    assert case_pipeline.plan_in_scene(mrml.scene, "Case 8") is None


def test_batch_script_with_a_ct_writes_postop_json_and_the_nodes_into_the_bundle(
        module, mrml, make_mrml, fake_postop, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(postop_job, "postop_command", lambda python_executable: fake_postop)
    ct_path = write_volume(Volume(np.full((6, 16, 16), -1000, np.int16), CT_IJK_TO_RAS), tmp_path / "postop_ct.nii.gz")
    batch = _batch_script()
    args = batch.parse_arguments([
        "--", "--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--labels", str(SAMPLE / "sample_labels.nii.gz"),
        "--markups", str(SAMPLE / "landmarks.mrk.json"), "--out", str(tmp_path / "out"), "--case", "Sample 1",
        "--ct", str(ct_path), "--lead-model", "medtronic-3387",
    ])

    code = batch.run(args, mrml.scene, module.DBSTargetingLogic(), module.case_pipeline)

    output = capsys.readouterr()
    assert code == 0, output.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Sample_1.mrb", "plan.json", "postop.json"]
    written = json.loads((tmp_path / "out" / "postop.json").read_text())
    assert written == dict(synthetic_postop(), plan="plan.json", ct=str(ct_path), mri=str(SAMPLE / "sample_t1w.nii.gz"))
    assert "PROGRESS 0.30 fusing" in output.out and "L lead (medtronic-3389, automatic)" in output.out
    assert "lead=medtronic-3387" in output.out
    reloaded = make_mrml()
    scene_files.load_mrb(reloaded.scene, tmp_path / "out" / "Sample_1.mrb")
    assert_postop_in_scene(reloaded.scene, written, "Sample 1")
    ct = reloaded.scene.GetFirstNodeByName("Post-op CT")
    assert subject_hierarchy.folder_of(reloaded.scene, ct) == "Sample 1"
    assert ct.GetParentTransformNode().GetName() == postop_nodes.TRANSFORM_NODE


def test_batch_script_writes_nothing_when_post_op_fails(module, mrml, fake_postop, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(postop_job, "postop_command", lambda python_executable: fake_postop)
    monkeypatch.setenv("FAKE_EXIT", "2")
    ct_path = write_volume(Volume(np.full((6, 16, 16), -1000, np.int16), CT_IJK_TO_RAS), tmp_path / "postop_ct.nii.gz")
    batch = _batch_script()
    args = batch.parse_arguments([
        "--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--labels", str(SAMPLE / "sample_labels.nii.gz"),
        "--markups", str(SAMPLE / "landmarks.mrk.json"), "--out", str(tmp_path / "out"), "--ct", str(ct_path),
    ])

    assert batch.run(args, mrml.scene, module.DBSTargetingLogic(), module.case_pipeline) == 2
    assert "no DBS lead found in the CT" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_real_postop_command_on_a_synthetic_case_puts_the_true_leads_into_the_scene(module, mrml):
    """End to end with the logic's own ``postop`` command (no stand-in): a phantom MRI and a moved
    post-operative CT with two leads of known position (``synthetic_ct``); fusion, localization and
    errors run in the child process; the scene ends up with the leads where they truly are, in MRI
    space, and the CT fused. About 40 s on 2 CPU cores, most of it the fusion's seven starts."""
    pytest.importorskip("DBSSegmentationLogic.cli.postop", reason="needs the logic's postop command")
    pytest.importorskip("matplotlib", reason="the postop command draws its report with matplotlib")
    from DBSSegmentationLogic.simulation.synthetic_ct import (
        make_phantom_mri,
        make_postop_ct,
    )

    leads = [dict(side="left", tip=(-12.0, -2.5, -4.0), entry=(-32.0, 35.0, 60.0)),
             dict(side="right", tip=(11.5, -2.0, -4.5), entry=(28.0, 38.0, 62.0))]
    angle = np.radians(4.0)
    pose = np.eye(4)  # the head moved between the scans: the CT's RAS is the phantom's under this pose
    pose[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    pose[:3, 3] = [3.0, -6.0, 4.0]
    synthetic = make_postop_ct(leads, spacing_mm=1.0, slice_thickness_mm=2.0, field_of_view_mm=(150.0, 190.0, 170.0),
                               pose=pose)
    mri_node = volume_node_from_volume(mrml.scene, make_phantom_mri(spacing_mm=2.0), "MRI")
    ct_node = volume_node_from_volume(mrml.scene, synthetic.volume, "Post-op CT")
    plan = synthetic_plan()
    plan["acpc"] = {"ac_ras": [0.0, 12.5, 0.0], "pc_ras": [0.0, -12.5, 0.0], "midline_ras": [0.0, 0.0, 40.0],
                    "mcp_ras": [0.0, 0.0, 0.0], "acpc_length_mm": 25.0}
    for trajectory, lead in zip(plan["trajectories"], leads):
        trajectory["target_ras"] = (np.array(lead["tip"]) + [0.5, 0.5, -1.0]).tolist()  # placed 1.2 mm off
        trajectory["entry_ras"] = list(map(float, lead["entry"]))
    progress = []

    postop = module.DBSTargetingLogic().postop(mri_node, ct_node, plan, caseName="Phantom",
                                               onLine=lambda line: line.progress and progress.append(line.progress[0]))

    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert postop["format"] == "dbs-postop/1" and (postop["ct"], postop["mri"]) == ("Post-op CT", "MRI")
    assert_postop_in_scene(mrml.scene, postop, "Phantom")  # every node matches postop.json within 0.01 mm
    phantom_from_ct = np.linalg.inv(pose)
    for lead, truth in zip(postop["leads"], synthetic.leads):
        assert lead["side"] == truth.side
        true_tip_mri = phantom_from_ct[:3, :3] @ truth.tip_ras + phantom_from_ct[:3, 3]
        np.testing.assert_allclose(lead["tip_ras"], true_tip_mri, atol=0.5, rtol=0)
        assert postop["errors"][lead["side"]]["euclidean_mm"] == pytest.approx(1.22, abs=0.5)
    # the CT, under the fusion transform, lies where the MRI's head is: its corners within 0.5 mm
    ni, nj, nk = synthetic.volume.shape_ijk
    corners = np.array([[i, j, k, 1] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float).T
    fused = volume_from_volume_node(ct_node).ijk_to_ras @ corners
    np.testing.assert_allclose(fused, phantom_from_ct @ synthetic.volume.ijk_to_ras @ corners, atol=0.5, rtol=0)
