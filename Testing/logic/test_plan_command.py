"""`dbs-plan plan` with a given label map: files written, numbers equal to the logic's, failures per side."""
import json

import numpy as np
import pytest
from test_targets_bejjani import POSES, make_case

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.io.exceptions import EXIT_BAD_INPUT
from DBSSegmentationLogic.io.markups import read_markups_points
from DBSSegmentationLogic.io.volumes import Volume, write_volume
from DBSSegmentationLogic.planning.plan import plan_case


def write_case(folder, **case_options):
    labels, acpc = make_case(*POSES[3], spacing_mm=0.4, **case_options)
    rng = np.random.default_rng(3)
    mri = Volume((100 + 40 * (labels.array > 0) + rng.normal(0, 5, labels.array.shape)).astype(np.float32), labels.ijk_to_ras)
    write_volume(mri, folder / "mri.nrrd")
    write_volume(labels, folder / "labels.nrrd")
    points = []
    for name, point in (("ac", acpc.ac_ras), ("pc", acpc.pc_ras), ("midline", acpc.midline_ras)):
        points += [f"--{name}", *map(str, point)]
    return labels, acpc, points


def test_plan_command_writes_the_plan_report_and_figures(tmp_path, capsys):
    labels, acpc, points = write_case(tmp_path)
    out = tmp_path / "plan"
    code = main(["plan", "--mri", str(tmp_path / "mri.nrrd"), "--labels", str(tmp_path / "labels.nrrd"),
                 *points, "--target", "psa", "--mounting", "lateral-left", "--out", str(out)])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["axial_construction.png", "plan.json", "plan_points.mrk.json", "report.md",
                     "trajectory_L_PSA.png", "trajectory_R_PSA.png", "view_3d.png"]
    assert all((out / name).stat().st_size > 5000 for name in names if name.endswith(".png"))
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    expected = plan_case(labels, acpc, "psa", mounting="lateral-left").to_dict()
    for written, reference in zip(plan["trajectories"], expected["trajectories"]):
        assert written["side"] == reference["side"]
        assert written["target_ras"] == pytest.approx(reference["target_ras"], abs=1e-9)
        assert written["ring_deg"] == pytest.approx(reference["ring_deg"], abs=1e-9)
        assert written["arc_deg"] == pytest.approx(reference["arc_deg"], abs=1e-9)
    # The Slicer markups hold the same targets, in RAS after reading.
    markups = read_markups_points(out / "plan_points.mrk.json")
    assert markups["L PSA target"] == pytest.approx(plan["trajectories"][0]["target_ras"], abs=1e-6)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## L PSA (left hemisphere)" in report and "Ring (°)" in report and "![3D view](view_3d.png)" in report
    assert "Report:" in capsys.readouterr().out


def test_failed_side_is_reported_and_the_other_side_planned(tmp_path, capsys):
    _, _, points = write_case(tmp_path, drop=("STN_right",))
    out = tmp_path / "plan"
    assert main(["plan", "--mri", str(tmp_path / "mri.nrrd"), "--labels", str(tmp_path / "labels.nrrd"),
                 *points, "--out", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert [t["side"] for t in plan["trajectories"]] == ["left"]
    # The quality check flags the missing STN, and that blocks the right side with its reason.
    assert "STN_right missing" in plan["failures"]["right"]
    assert "RIGHT side not planned" in capsys.readouterr().out


def test_bad_input_leaves_an_earlier_plan_untouched(tmp_path, capsys):
    _, _, points = write_case(tmp_path)
    out = tmp_path / "plan"
    assert main(["plan", "--mri", str(tmp_path / "mri.nrrd"), "--labels", str(tmp_path / "labels.nrrd"),
                 *points, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b broken")
    code = main(["plan", "--mri", str(tmp_path / "mri.nrrd"), "--labels", str(tmp_path / "broken.nii.gz"),
                 *points, "--out", str(out)])
    assert code == EXIT_BAD_INPUT and "cannot read image" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    code = main(["plan", "--mri", str(tmp_path / "mri.nrrd"), "--labels", str(tmp_path / "labels.nrrd"),
                 "--ac", "0", "0", "0", "--out", str(out)])
    assert code == EXIT_BAD_INPUT and "all three" in capsys.readouterr().err
