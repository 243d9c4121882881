import math

import numpy as np
import pytest

from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.geometry.frame import FrameSpace
from DBSSegmentationLogic.geometry.placement_error import placement_error
from DBSSegmentationLogic.geometry.trajectory import Trajectory
from DBSSegmentationLogic.io.exceptions import DBSInputError


def test_trajectory_geometry():
    trajectory = Trajectory(entry_ras=[0, 30, 40], target_ras=[0, 0, 0])
    assert trajectory.length_mm == pytest.approx(50.0, abs=1e-12)
    np.testing.assert_allclose(trajectory.insertion_direction_ras, [0, -0.6, -0.8], atol=1e-15)
    np.testing.assert_allclose(trajectory.point_at_depth(25), [0, 15, 20], atol=1e-12)
    np.testing.assert_allclose(trajectory.point_from_target(5), [0, -3, -4], atol=1e-12)
    assert trajectory.distance_to_point_mm([3, 15, 20]) == pytest.approx(3.0, abs=1e-12)
    assert trajectory.distance_to_point_mm([0, -3, -4]) == pytest.approx(5.0, abs=1e-12)  # beyond the target
    with pytest.raises(DBSInputError, match="distinct"):
        Trajectory(entry_ras=[1, 2, 3], target_ras=[1, 2, 3])


def test_hand_computed_errors_for_a_vertical_plan():
    # Plan straight down along -S to the target at the origin.
    plan = Trajectory(entry_ras=[0, 0, 60], target_ras=[0, 0, 0])
    # Actual tip 2 mm deep, 1.5 mm right, 2 mm anterior; lead tilted by atan(0.1) in R.
    axis = np.array([0.1, 0.0, -1.0])
    error = placement_error(plan, tip_ras=[1.5, 2.0, -2.0], axis_direction_ras=axis)
    assert error.euclidean_mm == pytest.approx(math.sqrt(1.5**2 + 2**2 + 2**2), abs=1e-12)
    assert error.depth_mm == pytest.approx(2.0, abs=1e-12)  # too deep is positive
    assert error.radial_mm == pytest.approx(2.5, abs=1e-12)
    # The axis through the tip meets the plane S = 0 two mm "above" the tip: R moves back by 0.2.
    assert error.radial_at_target_plane_mm == pytest.approx(math.hypot(1.3, 2.0), abs=1e-12)
    assert error.angular_deg == pytest.approx(math.degrees(math.atan(0.1)), abs=1e-12)
    assert error.ras_mm == pytest.approx([1.5, 2.0, -2.0], abs=1e-12)
    # The axis sign does not matter.
    flipped = placement_error(plan, tip_ras=[1.5, 2.0, -2.0], axis_direction_ras=-axis)
    assert flipped.angular_deg == pytest.approx(error.angular_deg, abs=1e-12)
    assert flipped.radial_at_target_plane_mm == pytest.approx(error.radial_at_target_plane_mm, abs=1e-12)


def test_per_axis_errors_in_frame_axes():
    frame = FrameSpace.virtual(AcpcSpace.from_landmarks([0, 12, 0], [0, -12, 0], [0, 0, 40]))
    plan = Trajectory(entry_ras=[-30, 20, 60], target_ras=[-12, -2, -4])
    error = placement_error(plan, tip_ras=[-13, -1, -5], axis_direction_ras=[18, 22, 64], acpc=None, frame=frame)
    # P - T = (-1, 1, -1) RAS -> Leksell X = -R, Y = A, Z = -S.
    assert error.frame_mm == pytest.approx([1, 1, 1], abs=1e-12)
    assert error.acpc_mm is None
    with pytest.raises(DBSInputError, match="zero vector"):
        placement_error(plan, tip_ras=[-13, -1, -5], axis_direction_ras=[0, 0, 0])


def test_acpc_axis_errors_in_a_tilted_head():
    pitch = math.radians(20)
    y_axis = np.array([0, math.cos(pitch), math.sin(pitch)])
    z_axis = np.array([0, -math.sin(pitch), math.cos(pitch)])
    acpc = AcpcSpace.from_landmarks(12 * y_axis, -12 * y_axis, 40 * z_axis)
    plan = Trajectory(entry_ras=[-30, 20, 60], target_ras=[-12, -2, -4])
    offset = 1.0 * np.array([1, 0, 0]) + 2.0 * y_axis - 0.5 * z_axis  # right 1, anterior 2, down 0.5
    error = placement_error(plan, tip_ras=plan.target_ras + offset, axis_direction_ras=[1, 1, 3], acpc=acpc)
    assert error.acpc_mm == pytest.approx([1.0, 2.0, -0.5], abs=1e-12)


def test_axis_parallel_to_the_target_plane_has_no_crossing():
    plan = Trajectory(entry_ras=[0, 0, 60], target_ras=[0, 0, 0])
    error = placement_error(plan, tip_ras=[0, 0, 0], axis_direction_ras=[1, 0, 0])
    assert error.radial_at_target_plane_mm is None
    assert error.angular_deg == pytest.approx(90.0, abs=1e-12)
