"""The `dbs-plan frame` command: numbers in its JSON, and one clear line with a non-zero exit on bad input."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.io.exceptions import EXIT_BAD_INPUT
from DBSSegmentationLogic.io.markups import read_markups_points, write_markups_points

AC, PC, MIDLINE = [0.0, 13.0, 0.0], [0.0, -13.0, 0.0], [0.0, -5.0, 45.0]
TARGET, ENTRY = [-12.0, -2.5, -4.0], [-32.0, 22.5, 56.0]


def point_args(**points):
    args = []
    for name, value in points.items():
        args += [f"--{name.replace('_', '-')}", *map(str, value)]
    return args


def run_frame(tmp_path, *extra, **points):
    out = tmp_path / "plan.json"
    code = main(["frame", *point_args(**points), "--json", str(out), *extra])
    return code, (json.loads(out.read_text(encoding="utf-8")) if out.exists() else None)


def test_frame_plan_numbers_in_the_virtual_frame(tmp_path, capsys):
    code, plan = run_frame(tmp_path, ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    assert code == 0
    assert plan["target"]["side"] == "left"
    assert plan["target"]["acpc"] == pytest.approx(TARGET, abs=1e-9)  # AC-PC space = RAS here
    assert plan["target"]["acpc_clinical"]["lateral_mm"] == pytest.approx(12.0)
    leksell = plan["target"]["leksell"]
    assert [leksell["X_mm"], leksell["Y_mm"], leksell["Z_mm"]] == pytest.approx([112.0, 97.5, 104.0], abs=1e-9)
    assert [leksell["set_X_mm"], leksell["set_Y_mm"], leksell["set_Z_mm"]] == [112.0, 97.5, 104.0]
    direction = np.array(ENTRY) - TARGET
    length = np.linalg.norm(direction)
    assert plan["trajectory_length_mm"] == pytest.approx(length, abs=1e-9)
    assert plan["arc_deg"] == pytest.approx(math.degrees(math.acos(direction[0] / length)), abs=1e-9)
    assert plan["ring_deg"] == pytest.approx(math.degrees(math.atan2(direction[2], direction[1])), abs=1e-9)
    assert plan["set_arc_deg"] % 0.5 == 0 and abs(plan["set_arc_deg"] - plan["arc_deg"]) <= 0.25
    printed = capsys.readouterr().out
    assert "LEFT hemisphere" in printed and "12.0 mm left" in printed


def test_inverse_use_from_leksell_and_ring_arc_reproduces_the_plan(tmp_path):
    _, forward = run_frame(tmp_path, ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    leksell = forward["target"]["leksell"]
    _, inverse = run_frame(
        tmp_path, "--entry-distance", str(forward["trajectory_length_mm"]), ac=AC, pc=PC, midline=MIDLINE,
        target_leksell=[leksell["X_mm"], leksell["Y_mm"], leksell["Z_mm"]],
        ring=[forward["ring_deg"]], arc=[forward["arc_deg"]],
    )
    assert inverse["target"]["ras"] == pytest.approx(TARGET, abs=1e-9)
    assert inverse["entry"]["ras"] == pytest.approx(ENTRY, abs=1e-9)


@pytest.mark.parametrize("mounting", ["lateral-left", "sagittal-anterior", "sagittal-posterior"])
def test_mountings_give_consistent_angles(tmp_path, mounting):
    _, plan = run_frame(tmp_path, "--mounting", mounting, ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    from DBSSegmentationLogic.geometry.frame import direction_from_ring_arc

    expected = (np.array(ENTRY) - TARGET) / plan["trajectory_length_mm"]
    assert direction_from_ring_arc(plan["ring_deg"], plan["arc_deg"], mounting) == pytest.approx(expected, abs=1e-9)


def test_tilted_head_gives_the_same_frame_plan_as_the_aligned_one(tmp_path):
    """Rotating the whole head in the scanner leaves every AC-PC and virtual-frame number unchanged."""
    rotation = np.array(sitk.Euler3DTransform((0, 0, 0), 0.3, -0.2, 0.25).GetMatrix()).reshape(3, 3)
    shift = np.array([10.0, -30.0, 22.0])
    moved = {name: (rotation @ np.array(p) + shift).tolist()
             for name, p in dict(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY).items()}
    _, aligned = run_frame(tmp_path, ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    _, tilted = run_frame(tmp_path, **moved)
    for key in ("ring_deg", "arc_deg", "trajectory_length_mm"):
        assert tilted[key] == pytest.approx(aligned[key], abs=1e-9)
    assert tilted["target"]["acpc"] == pytest.approx(aligned["target"]["acpc"], abs=1e-9)
    assert tilted["target"]["side"] == "left"


def test_rigid_transform_file_is_used(tmp_path):
    # Frame centre at RAS (-5, -7, -3), axes aligned: frame RAS = (-7, 4.5, -1) -> X 107, Y 104.5, Z 101.
    path = tmp_path / "frame.tfm"
    sitk.WriteTransform(sitk.TranslationTransform(3, [5.0, 7.0, -3.0]), str(path))
    code, plan = run_frame(tmp_path, "--image-to-frame", str(path), ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    assert code == 0
    leksell = plan["target"]["leksell"]
    assert [leksell["X_mm"], leksell["Y_mm"], leksell["Z_mm"]] == pytest.approx([107.0, 104.5, 101.0], abs=1e-9)


def test_landmarks_from_a_slicer_markups_file(tmp_path):
    markups = tmp_path / "landmarks.mrk.json"
    write_markups_points(markups, {"AC": AC, "PC": PC, "Midline": MIDLINE, "Target": TARGET, "Entry": ENTRY})
    document = json.loads(markups.read_text(encoding="utf-8"))
    assert document["markups"][0]["coordinateSystem"] == "LPS"
    assert document["markups"][0]["controlPoints"][0]["position"] == pytest.approx([-AC[0], -AC[1], AC[2]])
    assert read_markups_points(markups)["Target"] == pytest.approx(TARGET)
    code, from_file = run_frame(tmp_path, "--markups", str(markups))
    _, from_options = run_frame(tmp_path, ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    assert code == 0 and from_file["ring_deg"] == pytest.approx(from_options["ring_deg"], abs=1e-9)
    # An explicit option overrides the file's point.
    _, overridden = run_frame(tmp_path, "--markups", str(markups), target=[12.0, -2.5, -4.0])
    assert overridden["target"]["side"] == "right"


BAD_INPUTS = {
    "collinear": (dict(ac=AC, pc=PC, midline=[0, 30, 0], target=TARGET, entry=ENTRY), "collinear"),
    "ac equals pc": (dict(ac=AC, pc=AC, midline=MIDLINE, target=TARGET, entry=ENTRY), "distinct landmarks"),
    "entry equals target": (dict(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=TARGET), "distinct points"),
    "entry below target": (dict(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=[-30, 0, -40]), "below the target"),
    "ring outside range": (dict(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, ring=[190], arc=[90]), r"outside \[0, 180\]"),
    "arc outside range": (dict(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, ring=[90], arc=[-5]), r"outside \[0, 180\]"),
    "missing landmark": (dict(ac=AC, pc=PC, target=TARGET, entry=ENTRY), "missing landmark"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, capsys, case):
    points, message = BAD_INPUTS[case]
    code, plan = run_frame(tmp_path, **points)
    error = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT and plan is None
    assert len(error.splitlines()) == 1 and error.startswith("error: ")
    assert __import__("re").search(message, error)


def test_bad_files_give_one_clear_line_and_exit_2(tmp_path, capsys):
    points = point_args(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)
    scaled = sitk.AffineTransform(3)
    scaled.Scale(1.05)
    sitk.WriteTransform(scaled, str(tmp_path / "scaled.tfm"))
    (tmp_path / "garbage.tfm").write_text("#Insight Transform File V1.0\nTransform: Nonsense\n")
    (tmp_path / "broken.mrk.json").write_text('{"markups": [{"controlPoints": [{"label": "AC", "position": [1, 2]}]}]}')
    (tmp_path / "notjson.mrk.json").write_text("{markups")
    cases = [
        (["--image-to-frame", str(tmp_path / "scaled.tfm")], "not rigid"),
        (["--image-to-frame", str(tmp_path / "garbage.tfm")], "cannot read transform"),
        (["--markups", str(tmp_path / "broken.mrk.json")], "no valid 3D position"),
        (["--markups", str(tmp_path / "notjson.mrk.json")], "not valid JSON"),
        (["--markups", str(tmp_path / "absent.mrk.json")], "not found"),
    ]
    for extra, message in cases:
        assert main(["frame", *points, *extra]) == EXIT_BAD_INPUT
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and message in error, error


def test_console_entry_point_exit_codes_in_a_real_process(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "DBSSegmentationLogic", "frame",
         *point_args(ac=AC, pc=PC, midline=MIDLINE, target=TARGET, entry=ENTRY)],
        capture_output=True, text=True,
    )
    assert good.returncode == 0 and "Arc" in good.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "DBSSegmentationLogic", "frame",
         *point_args(ac=AC, pc=AC, midline=MIDLINE, target=TARGET, entry=ENTRY)],
        capture_output=True, text=True,
    )
    assert bad.returncode == EXIT_BAD_INPUT
    assert bad.stderr.strip().count("\n") == 0 and "AC and PC" in bad.stderr
    helps = subprocess.run([sys.executable, "-m", "DBSSegmentationLogic", "frame", "--help"], capture_output=True, text=True)
    assert helps.returncode == 0 and "--image-to-frame" in helps.stdout
