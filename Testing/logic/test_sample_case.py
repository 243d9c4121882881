"""The bundled sample case (CIT168 head turned in the scanner) planned end to end."""
import importlib.util
import json

import numpy as np
import pytest
from conftest import REPO_ROOT

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.io.volumes import read_volume
from DBSSegmentationLogic.planning.plan import plan_case
from DBSSegmentationLogic.segmentation.labels import cit168_to_ours

CASE = REPO_ROOT / "Resources" / "SampleCase"


def test_sample_case_plan_is_anatomically_right(tmp_path):
    out = tmp_path / "plan"
    code = main(["plan", "--mri", str(CASE / "sample_t1w.nii.gz"), "--labels", str(CASE / "sample_labels.nii.gz"),
                 "--markups", str(CASE / "landmarks.mrk.json"), "--out", str(out)])
    assert code == 0
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert plan["failures"] == {}
    for trajectory in plan["trajectories"]:
        lateral, ap, vertical = trajectory["target_acpc"]
        # Left target on the left (negative AC-PC x), right on the right; plausible STN position.
        assert np.sign(lateral) == (-1 if trajectory["side"] == "left" else 1)
        assert 9.0 <= abs(lateral) <= 14.0 and -5.0 <= ap <= 1.0 and -6.0 <= vertical <= -2.0
        assert trajectory["direct_to_indirect_mm"] <= 4.0
        assert trajectory["target_leksell"][0] == pytest.approx(100 - lateral, abs=1e-9)


def test_head_pose_does_not_change_the_plan(shared_data):
    """The sample is the template with a rotated header: its plan in AC-PC and frame terms equals
    the plan of the untouched template, and its RAS targets are the template's moved by the pose."""
    # scripts/ is not a package: load the sample-case script to reuse its head pose.
    spec = importlib.util.spec_from_file_location("make_sample_case", REPO_ROOT / "scripts" / "make_sample_case.py")
    make_sample_case = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample_case)
    head_pose = make_sample_case.head_pose

    landmarks = json.loads((REPO_ROOT / "Resources" / "Template" / "cit168_landmarks.json").read_text(encoding="utf-8"))
    template_acpc = AcpcSpace.from_landmarks(*(landmarks[k]["ras_mm"] for k in ("ac", "pc", "midline")))
    template_labels = read_volume(shared_data / "cit168" / "cit168_labels.nii.gz")
    template_labels = template_labels.with_array(cit168_to_ours(template_labels.array))
    reference = plan_case(template_labels, template_acpc, "stn")

    pose = head_pose()
    sample_acpc = AcpcSpace.from_landmarks(*(pose[:3, :3] @ landmarks[k]["ras_mm"] + pose[:3, 3] for k in ("ac", "pc", "midline")))
    sample = plan_case(read_volume(CASE / "sample_labels.nii.gz"), sample_acpc, "stn")
    for moved, still in zip(sample.trajectories, reference.trajectories):
        assert moved.side == still.side
        assert moved.target_acpc == pytest.approx(still.target_acpc, abs=0.05)
        assert moved.ring_deg == pytest.approx(still.ring_deg, abs=0.01)
        assert moved.arc_deg == pytest.approx(still.arc_deg, abs=0.01)
        assert np.linalg.norm(pose[:3, :3] @ still.target_ras + pose[:3, 3] - moved.target_ras) <= 0.05
