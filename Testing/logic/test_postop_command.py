"""`dbs-plan postop` end to end on the sample case: a plan made by `dbs-plan plan`, a post-operative CT
made from its MRI with leads at the planned trajectories plus known offsets, under a known pose.

Checked: the reported errors equal the injected ones, with the right sides; the output files and the
postop.json keys; the user-transform path; the manual fallback; a lead on an unplanned side; sides
that follow the anatomy when the CT's array is flipped; and each bad input (exit 2, one line, an
earlier output folder left untouched)."""
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from test_fusion import SAMPLE, TEST_GRID, demo_module, sample_ct_model, sample_mri

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.postop.evaluation import acpc_from_plan
from DBSSegmentationLogic.io.exceptions import EXIT_BAD_INPUT
from DBSSegmentationLogic.io.volumes import Volume, write_volume
from DBSSegmentationLogic.postop import fusion

POSE_ROTATION_DEG, POSE_TRANSLATION_MM, SEED = 14.0, 18.0, 7
OFFSETS = {"left": (1.5, -1.0, 1.2), "right": (-1.1, 0.8, -1.6)}
TILTS_DEG = {"left": 2.5, "right": 1.5}
LEAD_KEYS = {"side", "model", "tip_ras", "direction_ras", "contact_centres_ras", "axis_point_ras", "source"}
ERROR_KEYS = {"euclidean_mm", "depth_mm", "radial_mm", "radial_at_target_plane_mm", "angular_deg", "ras_mm",
              "acpc_mm", "frame_mm"}


def make_ct(plan, pose, leads, seed=SEED, **grid):
    demo = demo_module()
    options = {**TEST_GRID, **grid}
    return demo.make_ct_from_mri(sample_mri(), leads, pose, options["shape_ijk"], options["spacing_mm"],
                                 options["slice_thickness_mm"], seed=seed, model=sample_ct_model())


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The plan, the CT, its truth, and one automatic post-op run."""
    folder = tmp_path_factory.mktemp("postop_case")
    assert main(["plan", "--mri", str(SAMPLE / "sample_t1w.nii.gz"), "--labels", str(SAMPLE / "sample_labels.nii.gz"),
                 "--markups", str(SAMPLE / "landmarks.mrk.json"), "--target", "stn", "--out", str(folder / "plan")]) == 0
    plan_path = folder / "plan" / "plan.json"
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    assert sorted(t["side"] for t in plan["trajectories"]) == ["left", "right"]
    demo = demo_module()
    pose = demo.random_pose(np.random.default_rng(SEED), POSE_ROTATION_DEG, POSE_TRANSLATION_MM, plan["acpc"]["mcp_ras"])
    leads = demo.planned_leads(plan, OFFSETS, TILTS_DEG)
    ct = make_ct(plan, pose, leads)
    write_volume(ct, folder / "ct.nii.gz")
    truth = demo.truth_document(plan, leads, pose, POSE_ROTATION_DEG, POSE_TRANSLATION_MM, OFFSETS, TILTS_DEG)
    fusion.write_ct_to_mri_transform(pose, folder / "truth.tfm")
    out = folder / "out"
    # The MRI is not given: the one recorded in plan.json is used.
    assert main(["postop", "--plan", str(plan_path), "--ct", str(folder / "ct.nii.gz"), "--out", str(out)]) == 0
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    return SimpleNamespace(folder=folder, plan_path=plan_path, plan=plan, pose=pose, leads=leads, ct=ct, truth=truth,
                           out=out, result=result)


def postop(case, out, *options, ct=None):
    return main(["postop", "--plan", str(case.plan_path), "--ct", str(ct or case.folder / "ct.nii.gz"),
                 "--out", str(out), *map(str, options)])


def truth_lead(case, side):
    return next(lead for lead in case.truth["leads"] if lead["side"] == side)


def test_reported_errors_equal_the_injected_offsets_with_the_right_sides(case):
    result = case.result
    assert result["format"] == "dbs-postop/1"
    assert {"plan", "ct", "fusion", "leads", "errors", "warnings"} <= set(result)
    assert {"method", "ct_to_mri_ras", "metric", "overlap", "seconds"} <= set(result["fusion"])
    assert result["plan"] == str(case.plan_path)
    assert result["warnings"] == []
    fused = np.array(result["fusion"]["ct_to_mri_ras"])
    targets = [t["target_ras"] for t in case.plan["trajectories"]]
    assert fusion.fusion_error_mm(fused, case.pose, targets).max() <= 0.5
    assert [lead["side"] for lead in result["leads"]] == ["left", "right"]
    for lead in result["leads"]:
        assert LEAD_KEYS <= set(lead) and lead["source"] == "automatic" and lead["model"] == "medtronic-3389"
        truth = truth_lead(case, lead["side"])
        assert np.linalg.norm(np.subtract(lead["tip_ras"], truth["tip_ras"])) <= 0.5
        assert np.linalg.norm(np.subtract(lead["contact_centres_ras"], truth["contact_centres_ras"]), axis=1).max() <= 0.5
        assert np.linalg.norm(lead["direction_ras"]) == pytest.approx(1.0, abs=1e-9)
        assert np.degrees(np.arccos(np.clip(np.dot(lead["direction_ras"], truth["direction_ras"]), -1, 1))) <= 1.0
        # The side is the patient's: the AC-PC x sign of the tip, and the injected lead of that side.
        assert (lead["side"] == "left") == (lead["tip_ras"][0] < case.plan["acpc"]["mcp_ras"][0])
    assert set(result["errors"]) == {"left", "right"}
    for side, error in result["errors"].items():
        expected = case.truth["expected_errors"][side]
        assert set(error) == ERROR_KEYS
        for key in ("euclidean_mm", "depth_mm", "radial_mm", "radial_at_target_plane_mm"):
            assert error[key] == pytest.approx(expected[key], abs=0.5), key
        assert error["angular_deg"] == pytest.approx(expected["angular_deg"], abs=1.0)
        for key in ("ras_mm", "acpc_mm", "frame_mm"):
            assert error[key] == pytest.approx(expected[key], abs=0.5), key
        # The injected offset is the per-axis RAS error.
        assert error["ras_mm"] == pytest.approx(list(OFFSETS[side]), abs=0.5)


def test_output_files_and_report(case):
    names = sorted(p.name for p in case.out.iterdir())
    assert names == ["ct_to_mri.tfm", "fusion_quality.png", "lead_L_STN.png", "lead_R_STN.png", "postop.json",
                     "postop_points.mrk.json", "report.md"]
    assert all((case.out / name).stat().st_size > 20000 for name in names if name.endswith(".png"))
    report = (case.out / "report.md").read_text(encoding="utf-8")
    for text in ("## Left lead", "## Right lead", "Euclidean (mm)", "Depth (mm, + too deep)", "Radial at the target plane",
                 "Angular (°)", "AC-PC x (right)", "Frame X / Y / Z", "Contact 3 centre", "![fusion quality](fusion_quality.png)"):
        assert text in report, text
    left = case.result["errors"]["left"]
    assert f"| Euclidean (mm) | {left['euclidean_mm']:.2f} |" in report
    # Both injected lateral offsets point to the midline (left lead +1.5 mm R, right lead -1.1 mm R): medial.
    assert report.count(" mm medial, ") == 2


def test_progress_lines_and_the_user_transform_path(case, tmp_path, capsys):
    out = tmp_path / "with_transform"
    assert postop(case, out, "--transform", case.out / "ct_to_mri.tfm") == 0
    printed = capsys.readouterr().out
    fractions = [float(line.split()[1]) for line in printed.splitlines() if line.startswith("PROGRESS ")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 5
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    assert result["fusion"]["method"].startswith("user transform")
    assert result["fusion"]["metric"] is None
    assert np.array(result["fusion"]["ct_to_mri_ras"]) == pytest.approx(np.array(case.result["fusion"]["ct_to_mri_ras"]), abs=1e-6)
    for lead, reference in zip(result["leads"], case.result["leads"]):
        assert lead["side"] == reference["side"]
        assert lead["tip_ras"] == pytest.approx(reference["tip_ras"], abs=1e-4)
    # The truth, written the other way round (CT -> MRI): the errors within 0.5 mm of the injected ones.
    fusion.write_ct_to_mri_transform(case.pose, tmp_path / "forward.tfm", "ct-to-mri")
    assert postop(case, tmp_path / "forward", "--transform", tmp_path / "forward.tfm",
                  "--transform-file-maps", "ct-to-mri") == 0
    result = json.loads((tmp_path / "forward" / "postop.json").read_text(encoding="utf-8"))
    assert np.array(result["fusion"]["ct_to_mri_ras"]) == pytest.approx(case.pose, abs=1e-6)
    for side, error in result["errors"].items():
        assert error["ras_mm"] == pytest.approx(case.truth["expected_errors"][side]["ras_mm"], abs=0.3)


def manual_options(case, space="mri", mri_to_space=np.eye(4)):
    options = ["--manual-space", space]
    for side in ("right", "left"):
        lead = truth_lead(case, side)
        tip = np.array(lead["tip_ras"])
        point = tip + 25.0 * np.array(lead["direction_ras"])
        tip, point = fusion.transform_points(mri_to_space, [tip, point])
        options += ["--manual-lead", side, *tip, *point]
    return options


@pytest.mark.parametrize("space", ["mri", "ct"])
def test_manual_fallback_gives_the_exact_errors(case, tmp_path, space):
    mri_to_space = np.eye(4) if space == "mri" else np.linalg.inv(case.pose)
    out = tmp_path / "manual"
    assert postop(case, out, "--transform", case.folder / "truth.tfm", *manual_options(case, space, mri_to_space)) == 0
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    assert [lead["side"] for lead in result["leads"]] == ["left", "right"]
    assert all(lead["source"] == "manual" for lead in result["leads"])
    for side, error in result["errors"].items():
        expected = case.truth["expected_errors"][side]
        for key in ("euclidean_mm", "depth_mm", "radial_mm", "radial_at_target_plane_mm", "angular_deg"):
            assert error[key] == pytest.approx(expected[key], abs=1e-6), key
        for key in ("ras_mm", "acpc_mm", "frame_mm"):
            assert error[key] == pytest.approx(expected[key], abs=1e-6), key


def test_fusion_through_a_pre_operative_ct(case, tmp_path):
    """Post-op CT -> pre-op CT (CT-CT correlation) chained with a known pre-op CT -> MRI transform."""
    demo = demo_module()
    preop_pose = demo.random_pose(np.random.default_rng(99), 10.0, 15.0, case.plan["acpc"]["mcp_ras"])
    write_volume(make_ct(case.plan, preop_pose, [], seed=99), tmp_path / "preop.nii.gz")
    fusion.write_ct_to_mri_transform(preop_pose, tmp_path / "preop.tfm")
    out = tmp_path / "out"
    assert postop(case, out, "--preop-ct", tmp_path / "preop.nii.gz", "--preop-transform", tmp_path / "preop.tfm") == 0
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    assert result["fusion"]["method"].startswith("post-op CT -> pre-op CT")
    targets = [t["target_ras"] for t in case.plan["trajectories"]]
    assert fusion.fusion_error_mm(np.array(result["fusion"]["ct_to_mri_ras"]), case.pose, targets).max() <= 0.5
    for side, error in result["errors"].items():
        assert error["ras_mm"] == pytest.approx(case.truth["expected_errors"][side]["ras_mm"], abs=0.5)


def test_a_lead_on_a_side_without_a_plan_is_reported(case, tmp_path, capsys):
    plan = dict(case.plan)
    plan["trajectories"] = [t for t in plan["trajectories"] if t["side"] == "left"]
    plan["failures"] = {"right": "STN_right missing"}
    plan["frame"] = "image-to-frame transform from frame.tfm (frame-to-image file)"
    plan["mri"] = str(SAMPLE / "sample_t1w.nii.gz")
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["postop", "--plan", str(tmp_path / "plan.json"), "--ct", str(case.folder / "ct.nii.gz"),
                 "--transform", str(case.folder / "truth.tfm"), "--out", str(out)]) == 0
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    assert [lead["side"] for lead in result["leads"]] == ["left", "right"]
    assert set(result["errors"]) == {"left"}
    assert any("right hemisphere but the plan has no right trajectory" in w and "STN_right missing" in w
               for w in result["warnings"])
    # A real frame that plan.json does not record: no frame-axis errors, and a warning saying why.
    assert result["errors"]["left"]["frame_mm"] is None and result["errors"]["left"]["acpc_mm"] is not None
    assert any("--image-to-frame" in w for w in result["warnings"])
    assert "RIGHT lead (automatic)" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("lead_*.png")) == ["lead_L_STN.png"]


def test_sides_follow_the_anatomy_not_the_array(case, tmp_path):
    """The same CT stored with its i axis reversed (and its geometry adjusted): same leads, same sides."""
    ct = case.ct
    flipped_geometry = ct.ijk_to_ras.copy()
    flipped_geometry[:3, 0] = -ct.ijk_to_ras[:3, 0]
    flipped_geometry[:3, 3] = ct.ijk_to_ras_points([ct.shape_ijk[0] - 1, 0, 0])
    flipped = Volume(np.ascontiguousarray(ct.array[:, :, ::-1]), flipped_geometry)
    assert np.allclose(flipped.ijk_to_ras_points([0, 0, 0]), ct.ijk_to_ras_points([ct.shape_ijk[0] - 1, 0, 0]))
    write_volume(flipped, tmp_path / "flipped.nii.gz")
    out = tmp_path / "out"
    assert postop(case, out, "--transform", case.folder / "truth.tfm", ct=tmp_path / "flipped.nii.gz") == 0
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    assert [lead["side"] for lead in result["leads"]] == ["left", "right"]
    for lead in result["leads"]:
        truth = truth_lead(case, lead["side"])
        assert np.linalg.norm(np.subtract(lead["tip_ras"], truth["tip_ras"])) <= 0.5


# ---------------------------------------------------------------------------------------------------
# Bad inputs: exit 2, one line on stderr, an earlier output folder untouched.


def _no_lead_ct(case, folder):
    write_volume(make_ct(case.plan, case.pose, []), folder / "ct.nii.gz")
    return ["--ct", folder / "ct.nii.gz", "--transform", case.folder / "truth.tfm"]


def _three_leads_ct(case, folder):
    demo = demo_module()
    extra_plan = {"trajectories": [dict(case.plan["trajectories"][0])]}
    target = np.array(extra_plan["trajectories"][0]["target_ras"])
    extra_plan["trajectories"][0]["target_ras"] = (target + [-12.0, 25.0, 10.0]).tolist()
    extra_plan["trajectories"][0]["entry_ras"] = (np.array(extra_plan["trajectories"][0]["entry_ras"]) + [-12.0, 25.0, 10.0]).tolist()
    extra = demo.planned_leads(extra_plan, {}, {})
    write_volume(make_ct(case.plan, case.pose, case.leads + extra), folder / "ct.nii.gz")
    return ["--ct", folder / "ct.nii.gz", "--transform", case.folder / "truth.tfm"]


def _lead_outside_the_brain(case, folder):
    # A manual left tip in the scalp, 90 mm above the MCP and 20 mm left of the midline.
    acpc = acpc_from_plan(case.plan)
    tip, point = acpc.to_ras([[-20.0, 0.0, 90.0], [-20.0, 0.0, 110.0]])
    return ["--transform", case.folder / "truth.tfm", "--manual-lead", "left", *tip, *point]


def _mri_as_ct(case, folder):
    return ["--ct", SAMPLE / "sample_t1w.nii.gz"]


def _transform_without_overlap(case, folder):
    far = case.pose.copy()
    far[:3, 3] += [0.0, 0.0, 250.0]
    fusion.write_ct_to_mri_transform(far, folder / "far.tfm")
    return ["--transform", folder / "far.tfm"]


def _ct_slab_without_overlap(case, folder):
    """A CT of a 24 mm slab through the top of the head: whatever the fusion does, it cannot cover the MRI."""
    ct = case.ct
    slab = fusion.crop(ct, [0, 0, ct.shape_ijk[2] - 16], list(ct.shape_ijk))
    write_volume(slab, folder / "slab.nii.gz")
    return ["--ct", folder / "slab.nii.gz"]


def _manual_lead_on_the_wrong_side(case, folder):
    lead = truth_lead(case, "left")
    tip = np.array(lead["tip_ras"])
    return ["--transform", case.folder / "truth.tfm", "--manual-lead", "right", *tip,
            *(tip + 20.0 * np.array(lead["direction_ras"]))]


BAD_INPUTS = {
    "no lead": (_no_lead_ct, "no DBS lead found"),
    "three leads": (_three_leads_ct, "3 lead-like metal objects found"),
    "lead outside the brain": (_lead_outside_the_brain, "lies outside the brain"),
    "not a CT": (_mri_as_ct, "not a CT in Hounsfield units"),
    "user transform without overlap": (_transform_without_overlap, "does not overlap the MRI"),
    "fused CT without overlap": (_ct_slab_without_overlap, "does not overlap the MRI"),
    "manual lead on the wrong side": (_manual_lead_on_the_wrong_side, "lies in the left hemisphere"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_leaves_earlier_output_untouched(case, tmp_path, capsys, name):
    make_options, message = BAD_INPUTS[name]
    out = tmp_path / "out"
    shutil.copytree(case.out, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    options = make_options(case, tmp_path)
    if "--ct" not in options:
        options = ["--ct", case.folder / "ct.nii.gz", *options]
    capsys.readouterr()
    code = main(["postop", "--plan", str(case.plan_path), "--out", str(out), *map(str, options)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_a_plan_that_is_not_a_plan_is_refused(case, tmp_path, capsys):
    (tmp_path / "plan.json").write_text(json.dumps({"hello": 1}), encoding="utf-8")
    code = main(["postop", "--plan", str(tmp_path / "plan.json"), "--ct", str(case.folder / "ct.nii.gz"),
                 "--out", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT and "is not a plan written by `dbs-plan plan`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
