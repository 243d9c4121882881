"""Frame registration (issue 14): N-localizer detection and rigid fit on synthetic frame CTs and MRIs with
a known pose, the `dbs-plan frame-register` command, its transform file read back by `--image-to-frame`,
and the refusals (wrong geometry, scaled image, non-frame image, malformed geometry file)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.frame_registration import load_localizer, register_frame
from DBSSegmentationLogic.frame_registration.localizer_geometry import (
    PRESETS,
    geometry_from_dict,
)
from DBSSegmentationLogic.frame_registration.rigid_fit import transform_error_mm
from DBSSegmentationLogic.frame_registration.rod_detection import slice_stack
from DBSSegmentationLogic.geometry.frame import (
    leksell_from_frame_ras,
    read_image_to_frame_transform,
)
from DBSSegmentationLogic.io.exceptions import EXIT_BAD_INPUT, DBSInputError
from DBSSegmentationLogic.io.volumes import Volume, write_volume
from DBSSegmentationLogic.simulation.frame_ct import make_frame_image

GEOMETRY = load_localizer("leksell-g")
#: Issue 14 targets.
MAX_TRANSFORM_ERROR_MM = 0.3  # over a 60 mm-radius ball around the frame centre
MAX_RMS_DISCREPANCY_MM = 0.1  # reported RMS residual vs the RMS under the true transform


def preset_document() -> dict:
    return json.loads(PRESETS["leksell-g"].read_text(encoding="utf-8"))


def plates_too_far_apart(extra_mm: float = 10.0) -> dict:
    """The preset with its lateral plates ``extra_mm`` further apart (each moved out by half)."""
    document = preset_document()
    for rod, ends in document["rods"].items():
        for point in ends:
            if rod.startswith("right"):
                point[0] -= extra_mm / 2  # right plate: smaller Leksell X
            elif rod.startswith("left"):
                point[0] += extra_mm / 2
    return document


# ------------------------------------------------------------------------------------------------
# Geometry


def test_preset_geometry_and_the_leksell_relation():
    assert [n.name for n in GEOMETRY.n_localizers] == ["right", "left", "anterior"]
    right = GEOMETRY.n_localizers[0]
    assert right.width_mm == pytest.approx(120.0)
    # An untilted axial slice at Leksell Z crosses the right N's diagonal (Z - 40) mm from the first
    # vertical rod: fraction (Z - 40) / 120, and the diagonal point has that Leksell Z.
    for z in (50.0, 100.0, 137.5):
        point = leksell_from_frame_ras(right.diagonal_point((z - 40.0) / 120.0))
        assert point == pytest.approx([5.0, z, z], abs=1e-9)
    assert GEOMETRY.to_dict()["rods"]["left_anterior"] == [[195.0, 160.0, 40.0], [195.0, 160.0, 160.0]]


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d.pop("rods"), "missing key 'rods'"),
    (lambda d: d["rods"].__setitem__("right_diagonal", [[5, 40, 40]]), "two points"),
    (lambda d: d["n_localizers"][0].__setitem__(1, "nowhere"), "does not define"),
    (lambda d: d["rods"]["right_diagonal"][1].__setitem__(0, 15.0), "out of the plane"),
    (lambda d: d["rods"]["right_anterior"][1].__setitem__(1, 175.0), "not parallel"),
    (lambda d: d["n_localizers"].__setitem__(1, ["left_posterior", "right_diagonal", "left_anterior"]), "used twice"),
])
def test_malformed_geometry_files_are_refused_with_one_line(tmp_path, capsys, mutate, reason):
    document = preset_document()
    mutate(document)
    path = tmp_path / "geometry.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DBSInputError, match=reason):
        load_localizer(path)
    assert main(["frame-register", "--image", str(tmp_path / "unused.nii.gz"), "--localizer", str(path),
                 "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and reason in error
    assert not (tmp_path / "out").exists()


def test_not_json_and_unknown_preset_are_refused(tmp_path):
    path = tmp_path / "geometry.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DBSInputError, match="localizer geometry .* is not valid JSON"):
        load_localizer(path)
    with pytest.raises(DBSInputError, match="neither a preset"):
        load_localizer("leksell-z")


# ------------------------------------------------------------------------------------------------
# Accuracy against the known pose

CASES = {
    # 1 mm slices, 10° tilt about the left-right axis, noise and speckles, all three plates.
    "ct-1mm-slices-tilt-10": dict(in_plane_mm=2.0, slice_mm=1.0, tilt_deg=(10.0, 0.0, 0.0)),
    # 2 mm slices, tilted about all axes, the anterior plate missing.
    "ct-2mm-slices-no-anterior-plate": dict(in_plane_mm=1.5, slice_mm=2.0, tilt_deg=(6.0, -6.0, 4.0),
                                            missing_plates=("anterior",)),
    # 2 mm slices, 10° about A, the left plate missing, twice the noise.
    "ct-2mm-slices-no-left-plate-noisy": dict(in_plane_mm=2.0, slice_mm=2.0, tilt_deg=(-3.0, 10.0, 2.0),
                                              missing_plates=("left",), noise=2.0),
    # 3 mm slices, MRI (rods bright, no plates visible, Rician-like noise).
    "mri-3mm-slices": dict(modality="mri", in_plane_mm=2.0, slice_mm=3.0, tilt_deg=(-8.0, 3.0, 0.0)),
    # Rods partly outside the field of view: in-plane (left plate cut away, anterior plate clipped) and
    # a scan range that misses the bottom 30 mm of the box.
    "ct-rods-partly-outside-fov": dict(in_plane_mm=1.5, slice_mm=2.0, tilt_deg=(4.0, -3.0, 2.0),
                                       fov_mm=(205.0, 230.0), fov_centre_mm=(12.0, -10.0), s_range_mm=(-40.0, 78.0)),
}


@pytest.fixture(scope="module", params=list(CASES))
def registered(request):
    options = dict(CASES[request.param])
    options.setdefault("translation_mm", (4.0, -6.0, 7.0))
    options.setdefault("speckles", 300)
    simulated = make_frame_image(GEOMETRY, seed=len(request.param), **options)
    return request.param, simulated, register_frame(simulated.volume, GEOMETRY)


def test_transform_error_over_a_60mm_ball_and_residuals_against_the_truth(registered):
    name, simulated, registration = registered
    worst, _ = transform_error_mm(registration.image_to_frame_ras, simulated.image_to_frame_ras, radius_mm=60.0)
    assert worst <= MAX_TRANSFORM_ERROR_MM, (name, worst)
    true_residuals = registration.residuals_mm(simulated.image_to_frame_ras)
    true_rms = float(np.sqrt(np.mean(true_residuals ** 2)))
    assert abs(registration.rms_residual_mm - true_rms) <= MAX_RMS_DISCREPANCY_MM, (name, registration.rms_residual_mm,
                                                                                    true_rms)
    assert registration.rms_residual_mm < 1.0
    assert registration.max_residual_mm == pytest.approx(registration.residuals_mm().max(), abs=1e-3)
    expected = {n.name for n in simulated.geometry.n_localizers}
    if name == "ct-rods-partly-outside-fov":
        expected -= {"left"}  # cut away by the field of view
    assert set(registration.n_localizers_found) == expected
    assert registration.slices_used >= 15
    # The frame's rotation is the simulated tilt.
    tilt = np.degrees(np.arccos((np.trace(np.linalg.inv(simulated.image_to_frame_ras)[:3, :3]) - 1) / 2))
    assert registration.rotation_deg == pytest.approx(tilt, abs=0.2)


def test_the_array_order_does_not_matter():
    """The same image stored with its axes permuted (as a sagittal series would be) registers the same."""
    simulated = make_frame_image(GEOMETRY, in_plane_mm=2.0, slice_mm=2.0, tilt_deg=(3.0, -5.0, 2.0),
                                 translation_mm=(-5.0, 3.0, 6.0), seed=3)
    volume = simulated.volume
    permuted_array = np.transpose(volume.array, (2, 0, 1))  # [i, k, j]: new (i, j, k) = old (j, k, i)
    permuted_matrix = volume.ijk_to_ras.copy()
    permuted_matrix[:3, :3] = volume.ijk_to_ras[:3, [1, 2, 0]]
    permuted = Volume(np.ascontiguousarray(permuted_array), permuted_matrix)
    stack = slice_stack(permuted.array, permuted.ijk_to_ras)
    assert stack.ijk_to_ras[:3, 2] == pytest.approx(volume.ijk_to_ras[:3, 2])  # slices along S again
    # Every voxel of the slice stack is the original voxel at the same RAS position.
    k, j, i = (np.random.default_rng(0).integers(0, n, 200) for n in stack.array.shape)
    ras = np.stack([i, j, k], axis=1) @ stack.ijk_to_ras[:3, :3].T + stack.ijk_to_ras[:3, 3]
    original = np.rint(volume.ras_to_ijk_points(ras)).astype(int)
    assert np.array_equal(stack.array[k, j, i], volume.array[original[:, 2], original[:, 1], original[:, 0]])
    worst, _ = transform_error_mm(register_frame(permuted, GEOMETRY).image_to_frame_ras, simulated.image_to_frame_ras)
    assert worst <= MAX_TRANSFORM_ERROR_MM


# ------------------------------------------------------------------------------------------------
# Refusals


@pytest.fixture(scope="module")
def frame_ct():
    return make_frame_image(GEOMETRY, in_plane_mm=2.0, slice_mm=2.0, tilt_deg=(5.0, -3.0, 2.0),
                            translation_mm=(4.0, -6.0, 7.0), speckles=300, seed=7)


@pytest.mark.parametrize("plates", [None, ("anterior",)])
def test_plates_10mm_too_far_apart_are_refused(frame_ct, plates):
    geometry = geometry_from_dict(plates_too_far_apart(10.0))
    if plates:
        geometry = geometry.without(plates)
    with pytest.raises(DBSInputError, match="does not fit the image rigidly") as raised:
        register_frame(frame_ct.volume, geometry)
    assert "\n" not in str(raised.value)


def test_a_scaled_image_is_refused(frame_ct):
    volume = frame_ct.volume
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, :3] *= 1.02  # pixel spacing and slice spacing 2 % too large
    with pytest.raises(DBSInputError, match=r"RMS residual \d\.\d\d mm.*affine fit scales it by 0\.98"):
        register_frame(Volume(volume.array, matrix), GEOMETRY)


@pytest.mark.parametrize("modality", ["ct", "mri"])
def test_an_image_without_a_localizer_is_refused(modality):
    head_only = make_frame_image(GEOMETRY, modality=modality, in_plane_mm=2.0, slice_mm=2.0, rods=False,
                                 speckles=300, seed=5)
    with pytest.raises(DBSInputError, match="no stereotactic localizer found"):
        register_frame(head_only.volume, GEOMETRY)


# ------------------------------------------------------------------------------------------------
# The command


def test_command_outputs_and_the_transform_file_convention(frame_ct, tmp_path, capsys):
    image = write_volume(frame_ct.volume, tmp_path / "frame_ct.nii.gz")
    out = tmp_path / "registration"
    assert main(["frame-register", "--image", str(image), "--localizer", "leksell-g", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    fractions = [float(line.split()[1]) for line in stdout.splitlines() if line.startswith("PROGRESS ")]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert {path.name for path in out.iterdir()} == {"image_to_frame.tfm", "frame_registration.json",
                                                      "frame_registration.png"}
    assert (out / "frame_registration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "frame_registration.json").read_text(encoding="utf-8"))
    matrix = np.array(report["image_to_frame_ras"])
    worst, _ = transform_error_mm(matrix, frame_ct.image_to_frame_ras)
    assert worst <= MAX_TRANSFORM_ERROR_MM
    residuals = np.array([row["residual_mm"] for row in report["fiducials"]])
    assert report["rms_residual_mm"] == pytest.approx(np.sqrt(np.mean(residuals ** 2)), abs=1e-3)
    assert report["max_residual_mm"] == pytest.approx(residuals.max(), abs=1e-3)
    assert report["slices_used"] == len({row["slice"] for row in report["fiducials"]})
    assert {row["kind"] for row in report["fiducials"]} == {"diagonal", "vertical"}
    assert len(report["rods"]) == 9 and all(rod["dots"] >= 20 for rod in report["rods"])
    # geometry.frame reads the file as exactly the JSON's image -> frame map ...
    read = read_image_to_frame_transform(out / "image_to_frame.tfm")
    assert np.abs(read.image_to_frame_ras - matrix).max() < 1e-6
    # ... and so does `dbs-plan frame --image-to-frame`: the target's Leksell coordinates are M @ target.
    target, entry = np.array([-12.0, 4.0, 10.0]), np.array([-35.0, 30.0, 70.0])
    plan_json = tmp_path / "frame.json"
    assert main(["frame", "--ac", "0", "13", "0", "--pc", "0", "-13", "0", "--midline", "0", "-5", "45",
                 "--target", *map(str, target), "--entry", *map(str, entry),
                 "--image-to-frame", str(out / "image_to_frame.tfm"), "--json", str(plan_json)]) == 0
    leksell = json.loads(plan_json.read_text(encoding="utf-8"))["target"]["leksell"]
    expected = leksell_from_frame_ras(matrix[:3, :3] @ target + matrix[:3, 3])
    assert [leksell["X_mm"], leksell["Y_mm"], leksell["Z_mm"]] == pytest.approx(expected, abs=1e-4)
    # And against the truth: the target's frame position is within the target error.
    truth = leksell_from_frame_ras(frame_ct.image_to_frame_ras[:3, :3] @ target + frame_ct.image_to_frame_ras[:3, 3])
    assert np.linalg.norm(np.array([leksell["X_mm"], leksell["Y_mm"], leksell["Z_mm"]]) - truth) <= 0.3


@pytest.mark.parametrize("case", ["wrong-geometry", "no-localizer"])
def test_refusal_exits_2_with_one_line_and_leaves_the_earlier_output_unchanged(frame_ct, tmp_path, capsys, case):
    image = write_volume(frame_ct.volume, tmp_path / "frame_ct.nii.gz")
    out = tmp_path / "registration"
    assert main(["frame-register", "--image", str(image), "--localizer", "leksell-g", "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    if case == "wrong-geometry":
        geometry = tmp_path / "wrong.json"
        geometry.write_text(json.dumps(plates_too_far_apart(10.0)), encoding="utf-8")
        arguments = ["--image", str(image), "--localizer", str(geometry)]
        expected = "does not fit the image rigidly"
    else:
        head_only = make_frame_image(GEOMETRY, in_plane_mm=2.0, slice_mm=2.0, rods=False, seed=9)
        arguments = ["--image", str(write_volume(head_only.volume, tmp_path / "head.nii.gz")), "--localizer",
                     "leksell-g"]
        expected = "no stereotactic localizer found"
    assert main(["frame-register", *arguments, "--out", str(out)]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error and error.startswith("error: ")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []


def test_too_coarse_or_flat_images_are_refused():
    coarse = Volume(np.zeros((20, 40, 40), np.int16), np.diag([1.0, 1.0, 6.0, 1.0]))
    with pytest.raises(DBSInputError, match="too coarse for frame registration"):
        register_frame(coarse, GEOMETRY)
    flat = Volume(np.zeros((3, 40, 40), np.int16), np.eye(4))
    with pytest.raises(DBSInputError, match="only 3 slices"):
        register_frame(flat, GEOMETRY)


def test_oblique_image_geometry_gives_the_same_frame(frame_ct):
    """The same voxels with direction cosines rotated 15° about S: the fit follows the RAS geometry."""
    from scipy.spatial.transform import Rotation

    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_euler("z", 15, degrees=True).as_matrix()
    oblique = Volume(frame_ct.volume.array, turn @ frame_ct.volume.ijk_to_ras)
    truth = frame_ct.image_to_frame_ras @ np.linalg.inv(turn)
    registration = register_frame(oblique, GEOMETRY)
    assert transform_error_mm(registration.image_to_frame_ras, truth)[0] <= MAX_TRANSFORM_ERROR_MM


def test_a_left_right_mirrored_image_is_refused(frame_ct):
    """With three plates the localizer is chiral: a header that flips the image left-right is caught (it
    would put every target on the wrong side)."""
    matrix = frame_ct.volume.ijk_to_ras.copy()
    matrix[0, :] *= -1  # R -> L
    with pytest.raises(DBSInputError, match="only mirrored left-right"):
        register_frame(Volume(frame_ct.volume.array, matrix), GEOMETRY)
