import math

import numpy as np
import pytest
import SimpleITK as sitk
from geometry_strategies import head_poses, landmarks, points_mm
from hypothesis import assume, given
from hypothesis import strategies as st

from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.geometry.frame import (
    MOUNTINGS,
    FrameSpace,
    direction_from_ring_arc,
    frame_ras_from_leksell,
    leksell_from_frame_ras,
    read_image_to_frame_transform,
    ring_arc_from_direction,
    round_to_half,
    write_image_to_frame_transform,
)
from DBSSegmentationLogic.io.exceptions import DBSInputError

angles_deg = st.floats(0, 180)
mountings = st.sampled_from(MOUNTINGS)


def rigid_frame(rotation, translation) -> FrameSpace:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return FrameSpace.from_matrix(matrix)


@given(points_mm)
def test_leksell_round_trip_and_axes(point):
    leksell = leksell_from_frame_ras(point)
    assert np.max(np.abs(frame_ras_from_leksell(leksell) - point)) <= 1e-9
    np.testing.assert_allclose(leksell, [100 - point[0], 100 + point[1], 100 - point[2]], atol=1e-12)


@given(landmarks(), points_mm)
def test_ras_leksell_round_trip_in_the_virtual_frame(marks, point):
    ac, pc, midline, rotation, mcp = marks
    frame = FrameSpace.virtual(AcpcSpace.from_landmarks(ac, pc, midline))
    assert np.max(np.abs(frame.ras_from_leksell(frame.leksell(point)) - point)) <= 1e-9
    np.testing.assert_allclose(frame.leksell(mcp), [100, 100, 100], atol=1e-9)
    # 10 mm to the patient's right of the MCP: X = 90; anterior: Y grows; superior: Z shrinks.
    np.testing.assert_allclose(frame.leksell(mcp + rotation @ [10, 5, 3]), [90, 105, 97], atol=1e-9)


@given(head_poses(), points_mm)
def test_ras_leksell_round_trip_through_a_rigid_transform(pose, point):
    rotation, translation = pose
    frame = rigid_frame(rotation, translation)
    assert np.max(np.abs(frame.ras_from_leksell(frame.leksell(point)) - point)) <= 1e-9


@given(angles_deg, angles_deg, mountings)
def test_ring_arc_direction_round_trip_over_the_whole_range(ring, arc, mounting):
    direction = direction_from_ring_arc(ring, arc, mounting)
    assert abs(np.linalg.norm(direction) - 1) <= 1e-12
    ring_back, arc_back = ring_arc_from_direction(direction, mounting)
    assert abs(arc_back - arc) <= 1e-9
    # The ring is undefined on the arc's own axis (arc 0 or 180): the direction must still round trip.
    if math.sin(math.radians(arc)) > 1e-6:
        assert abs(ring_back - ring) <= 1e-9 / math.sin(math.radians(arc)) + 1e-9
    assert np.max(np.abs(direction_from_ring_arc(ring_back, arc_back, mounting) - direction)) <= 1e-9


@given(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(0, 1)), mountings)
def test_direction_ring_arc_round_trip(vector, mounting):
    vector = np.array(vector)
    assume(np.linalg.norm(vector) > 1e-3)
    direction = vector / np.linalg.norm(vector)
    ring, arc = ring_arc_from_direction(direction, mounting)
    assert 0 <= ring <= 180 and 0 <= arc <= 180
    assert np.max(np.abs(direction_from_ring_arc(ring, arc, mounting) - direction)) <= 1e-9


def test_the_table_of_design_section_4():
    ring, arc = 30.0, 70.0
    r, a = math.radians(ring), math.radians(arc)
    expected = {
        "lateral-right": (math.cos(a), math.sin(a) * math.cos(r), math.sin(a) * math.sin(r)),
        "lateral-left": (-math.cos(a), -math.sin(a) * math.cos(r), math.sin(a) * math.sin(r)),
        "sagittal-anterior": (-math.sin(a) * math.cos(r), math.cos(a), math.sin(a) * math.sin(r)),
        "sagittal-posterior": (math.sin(a) * math.cos(r), -math.cos(a), math.sin(a) * math.sin(r)),
    }
    for mounting, direction in expected.items():
        np.testing.assert_allclose(direction_from_ring_arc(ring, arc, mounting), direction, atol=1e-15)


@pytest.mark.parametrize("mounting", MOUNTINGS)
def test_ring_90_arc_90_is_vertical(mounting):
    np.testing.assert_allclose(direction_from_ring_arc(90, 90, mounting), [0, 0, 1], atol=1e-15)
    assert ring_arc_from_direction([0, 0, 1], mounting) == pytest.approx((90, 90), abs=1e-12)


def test_lateral_right_known_cases_for_a_left_hemisphere_target():
    acpc = AcpcSpace.from_landmarks([0, 12, 0], [0, -12, 0], [0, 0, 50])
    frame = FrameSpace.virtual(acpc)
    target = np.array([-12.0, -2.0, -4.0])  # left STN region
    lateral_entry = target + [-30, 0, 60]
    ring, arc = frame.ring_arc(target, lateral_entry, "lateral-right")
    assert arc > 90 and ring == pytest.approx(90, abs=1e-9)
    anterior_entry = target + [0, 30, 60]
    ring, arc = frame.ring_arc(target, anterior_entry, "lateral-right")
    assert ring < 90 and arc == pytest.approx(90, abs=1e-9)
    # Hand-computed: entry 20 mm left, 25 mm anterior, 60 mm up.
    d = np.array([-20.0, 25.0, 60.0]) / math.sqrt(20**2 + 25**2 + 60**2)
    ring, arc = frame.ring_arc(target, target + [-20, 25, 60], "lateral-right")
    assert arc == pytest.approx(math.degrees(math.acos(d[0])), abs=1e-9)
    assert ring == pytest.approx(math.degrees(math.atan2(60, 25)), abs=1e-9)


@given(angles_deg, angles_deg)
def test_lateral_left_is_lateral_right_rotated_180_about_vertical(ring, arc):
    right = direction_from_ring_arc(ring, arc, "lateral-right")
    left = direction_from_ring_arc(ring, arc, "lateral-left")
    half_turn = np.diag([-1.0, -1.0, 1.0])
    assert np.max(np.abs(left - half_turn @ right)) <= 1e-12


@pytest.mark.parametrize("ring, arc", [(-1, 90), (90, 180.5), (float("nan"), 90), (200, 10)])
def test_angles_outside_0_180_are_refused(ring, arc):
    with pytest.raises(DBSInputError, match=r"outside \[0, 180\]"):
        direction_from_ring_arc(ring, arc)


def test_entry_below_target_and_zero_direction_are_refused():
    with pytest.raises(DBSInputError, match="below the target"):
        ring_arc_from_direction([0.1, 0.2, -0.5])
    with pytest.raises(DBSInputError, match="coincide"):
        ring_arc_from_direction([0, 0, 0])


def test_rounding_to_half():
    assert [round_to_half(v) for v in (56.24, 56.25, 56.74, 56.76, 102.0)] == [56.0, 56.5, 56.5, 57.0, 102.0]


@pytest.mark.parametrize("file_maps", ["frame-to-image", "image-to-frame"])
@pytest.mark.parametrize("suffix", [".tfm", ".txt", ".h5"])
def test_transform_file_round_trip(tmp_path, file_maps, suffix):
    rotation = np.array(sitk.Euler3DTransform((0, 0, 0), 0.1, -0.2, 0.3).GetMatrix()).reshape(3, 3)
    frame = rigid_frame(rotation, [3.0, -20.0, 15.0])
    path = write_image_to_frame_transform(frame, tmp_path / f"t{suffix}", file_maps)
    reread = read_image_to_frame_transform(path, file_maps)
    np.testing.assert_allclose(reread.image_to_frame_ras, frame.image_to_frame_ras, atol=1e-9)


def test_slicer_convention_file_maps_frame_points_to_image_points_in_lps(tmp_path):
    """A file written by ITK/Slicer holds the frame-to-image (resampling) map in LPS."""
    translation_lps = [5.0, 7.0, -3.0]  # frame LPS point p maps to image point p + t
    path = tmp_path / "frame.tfm"
    sitk.WriteTransform(sitk.TranslationTransform(3, translation_lps), str(path))
    frame = read_image_to_frame_transform(path)
    # The frame centre (origin) is at LPS (5, 7, -3) = RAS (-5, -7, -3) in the image.
    np.testing.assert_allclose(frame.to_image_ras([0, 0, 0]), [-5, -7, -3], atol=1e-12)
    np.testing.assert_allclose(frame.leksell([-5, -7, -3]), [100, 100, 100], atol=1e-12)


def test_non_rigid_and_unreadable_transforms_are_refused(tmp_path):
    scaled = sitk.AffineTransform(3)
    scaled.Scale(1.1)
    sitk.WriteTransform(scaled, str(tmp_path / "scaled.tfm"))
    with pytest.raises(DBSInputError, match="not rigid: it scales or shears"):
        read_image_to_frame_transform(tmp_path / "scaled.tfm")
    mirrored = sitk.AffineTransform(3)
    mirrored.SetMatrix([-1, 0, 0, 0, 1, 0, 0, 0, 1])
    sitk.WriteTransform(mirrored, str(tmp_path / "mirror.tfm"))
    with pytest.raises(DBSInputError, match="mirrors"):
        read_image_to_frame_transform(tmp_path / "mirror.tfm")
    bspline = sitk.BSplineTransformInitializer(sitk.Image([8, 8, 8], sitk.sitkFloat32), [4, 4, 4])
    bspline.SetParameters(np.random.default_rng(1).normal(0, 3, bspline.GetNumberOfParameters()).tolist())
    sitk.WriteTransform(bspline, str(tmp_path / "bspline.tfm"))
    with pytest.raises(DBSInputError, match="non-linearly"):
        read_image_to_frame_transform(tmp_path / "bspline.tfm")
    (tmp_path / "garbage.tfm").write_text("not a transform\n")
    with pytest.raises(DBSInputError, match="cannot read transform"):
        read_image_to_frame_transform(tmp_path / "garbage.tfm")
    with pytest.raises(DBSInputError, match="not found"):
        read_image_to_frame_transform(tmp_path / "missing.tfm")
