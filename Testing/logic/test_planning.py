import math

import numpy as np
import pytest
from geometry_strategies import rotation_matrix
from test_targets_bejjani import POSES, make_case

from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.geometry.frame import FrameSpace, direction_from_ring_arc
from DBSSegmentationLogic.geometry.trajectory import Trajectory
from DBSSegmentationLogic.io.volumes import Volume
from DBSSegmentationLogic.planning.plan import plan_case
from DBSSegmentationLogic.segmentation.labels import BY_NAME


def angle_between_deg(u, v):
    cosine = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


@pytest.mark.parametrize("mounting", ["lateral-right", "lateral-left", "sagittal-anterior", "sagittal-posterior"])
def test_both_sides_planned_with_ring_arc_reproducing_the_direction(mounting):
    labels, acpc = make_case(*POSES[2])
    plan = plan_case(labels, acpc, "stn", mounting=mounting)
    assert plan.failures == {}
    frame = FrameSpace.virtual(acpc)
    for trajectory in plan.trajectories:
        direction = frame.vector_to_frame_ras(np.subtract(trajectory.entry_ras, trajectory.target_ras))
        assert angle_between_deg(direction_from_ring_arc(trajectory.ring_deg, trajectory.arc_deg, mounting), direction) <= 0.01
        # Approach angles: 60° above the AC-PC plane seen from the side, 15° lateral seen from the front.
        x, y, z = np.subtract(trajectory.entry_acpc, trajectory.target_acpc)
        assert math.degrees(math.atan2(z, y)) == pytest.approx(60.0, abs=1e-9)
        assert math.degrees(math.atan2(abs(x), z)) == pytest.approx(15.0, abs=1e-9)
        assert np.sign(x) == (-1 if trajectory.side == "left" else 1)
        assert trajectory.length_mm == pytest.approx(70.0, abs=1e-9)
        assert trajectory.target_leksell == pytest.approx(frame.leksell(trajectory.target_ras).tolist(), abs=1e-9)
        assert abs(trajectory.set_ring_deg - trajectory.ring_deg) <= 0.25
        # Direct and indirect STN targets of this phantom are a few mm apart.
        assert trajectory.direct_to_indirect_mm == pytest.approx(
            np.linalg.norm(np.subtract(trajectory.target_ras, trajectory.indirect_target_ras)), abs=1e-9)
    assert [t.name for t in plan.trajectories] == ["L STN", "R STN"]


def test_failed_side_keeps_its_reason_and_the_other_side_is_planned():
    labels, acpc = make_case(*POSES[0], drop=("RN_left",))
    plan = plan_case(labels, acpc, "psa")
    assert "left red nucleus is missing" in plan.failures["left"]
    assert [t.side for t in plan.trajectories] == ["right"]


def test_user_entry_through_a_red_nucleus_is_warned():
    labels, acpc = make_case(*POSES[0])
    first = plan_case(labels, acpc, "stn").trajectories[0]
    target = np.array(first.target_ras)
    inside_rn_ras = acpc.to_ras([-5.2, -7.4, -3.0])  # inside RN_left, 1 mm above the target level
    entry = target + 60.0 * (inside_rn_ras - target) / np.linalg.norm(inside_rn_ras - target)
    plan = plan_case(labels, acpc, "stn", entries_ras={"left": entry})
    left = plan.trajectories[0]
    assert left.entry_source == "user"
    assert "RN_left" in left.crossed_structures
    assert any("passes through RN_left" in warning for warning in left.warnings)
    assert left.structure_distances_mm["RN_left"] == pytest.approx(0.0, abs=0.3)
    assert not plan.trajectories[1].warnings


def test_gpi_target_is_the_posteroventral_quarter_centroid():
    head = rotation_matrix(0.2, 0.1, -0.15)
    mcp = np.array([0.0, -12.0, -3.0])
    acpc = AcpcSpace.from_landmarks(mcp + head @ [0, 13, 0], mcp + head @ [0, -13, 0], mcp + head @ [0, 0, 40])
    spacing = 0.5
    # Grid aligned with the head so the GPi boxes are exact in voxels.
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = head * spacing
    ijk_to_ras[:3, 3] = mcp + head @ [-30, -20, -15]
    labels = Volume(np.zeros((60, 80, 120), np.uint8), ijk_to_ras)
    k, j, i = np.indices(labels.array.shape)
    acpc_points = acpc.to_acpc(labels.ijk_to_ras_points(np.stack([i, j, k], -1)))
    for side, sign in (("left", -1), ("right", 1)):
        box = ((np.abs(acpc_points[..., 0] - sign * 19.75) <= 3.5) & (np.abs(acpc_points[..., 1] - 4.25) <= 6.0)
               & (np.abs(acpc_points[..., 2] + 2.75) <= 3.5))
        labels.array[box] = BY_NAME[f"GPi_{side}"].code
    plan = plan_case(labels, acpc, "gpi")
    assert plan.failures == {}
    for trajectory in plan.trajectories:
        sign = -1 if trajectory.side == "left" else 1
        # Box x: 19.75 ± 3.5 (15 voxels); posterior half of y 4.25 ± 6 and lower half of z -2.75 ± 3.5
        # hold the voxels at or below the medians (the median voxels included).
        expected = [sign * 19.75, 4.25 - 3.0, -2.75 - 1.75]
        assert trajectory.target_acpc == pytest.approx(expected, abs=0.3)
        assert trajectory.target_acpc[0] * sign > 0


# --------------------------------------------------------------------------- atlas caudate check
def _caudate_centroid_template(side_value: int) -> np.ndarray:
    from DBSSegmentationLogic.io.volumes import read_volume
    from DBSSegmentationLogic.segmentation.template import SHIPPED_CAUDATE

    caudate = read_volume(SHIPPED_CAUDATE)
    return caudate.ijk_to_ras_points(np.argwhere(caudate.array == side_value).mean(0)[::-1])


def test_atlas_caudate_check_follows_the_template_to_image_map():
    from DBSSegmentationLogic.planning.plan import atlas_caudate_along

    angle = np.deg2rad(20.0)
    template_to_image = np.eye(4)
    template_to_image[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    template_to_image[:3, 3] = [4.0, -6.0, 60.0]  # lifts the caudate far above its template place
    left_centre_template = _caudate_centroid_template(1)
    left_centre_image = template_to_image[:3, :3] @ left_centre_template + template_to_image[:3, 3]
    assert left_centre_template[0] < -5  # value 1 is the patient's left caudate
    # a vertical trajectory through the mapped caudate centroid crosses it
    through = Trajectory(entry_ras=left_centre_image + [0, 0, 40], target_ras=left_centre_image - [0, 0, 5])
    distance, crossed = atlas_caudate_along(through, template_to_image)
    assert crossed and distance < 0.6
    # the same trajectory without the map (identity) misses: the map is really applied
    distance_identity, crossed_identity = atlas_caudate_along(through, np.eye(4))
    assert not crossed_identity and distance_identity > 5.0
    # a trajectory 60 mm lateral to the left caudate (outside the brain's caudates) is far from both
    far = Trajectory(entry_ras=left_centre_image + [-60, 0, 40], target_ras=left_centre_image + [-60, 0, -5])
    distance_far, crossed_far = atlas_caudate_along(far, template_to_image)
    assert not crossed_far and 45.0 < distance_far < 60.0
