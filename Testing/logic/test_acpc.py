import numpy as np
import pytest
from geometry_strategies import landmarks, points_mm
from hypothesis import given

from DBSSegmentationLogic.geometry.acpc import AcpcSpace, describe_acpc_point
from DBSSegmentationLogic.io.exceptions import DBSInputError


@given(landmarks(), points_mm)
def test_ras_acpc_round_trip(marks, point):
    ac, pc, midline, _, _ = marks
    space = AcpcSpace.from_landmarks(ac, pc, midline)
    assert np.max(np.abs(space.to_ras(space.to_acpc(point)) - point)) <= 1e-9
    assert np.max(np.abs(space.to_acpc(space.to_ras(point)) - point)) <= 1e-9


@given(landmarks())
def test_acpc_axes_follow_the_anatomy(marks):
    ac, pc, midline, rotation, mcp = marks
    space = AcpcSpace.from_landmarks(ac, pc, midline)
    # The AC-PC axes recover the head's own axes: x right, y anterior, z superior.
    np.testing.assert_allclose(space.axes_ras, rotation.T, atol=1e-9)
    np.testing.assert_allclose(space.mcp_ras, mcp, atol=1e-9)
    half = space.acpc_length_mm / 2
    np.testing.assert_allclose(space.to_acpc(ac), [0, half, 0], atol=1e-9)
    np.testing.assert_allclose(space.to_acpc(pc), [0, -half, 0], atol=1e-9)
    assert abs(space.to_acpc(midline)[0]) <= 1e-9 and space.to_acpc(midline)[2] > 0
    # A point 12 mm to the patient's right in the head is "right" in AC-PC space.
    right_point = mcp + rotation @ np.array([12.0, -2.5, -4.0])
    np.testing.assert_allclose(space.to_acpc(right_point), [12.0, -2.5, -4.0], atol=1e-9)
    assert describe_acpc_point(space.to_acpc(right_point))["side"] == "right"


def test_clinical_description_of_a_left_target():
    description = describe_acpc_point([-11.5, -2.0, -4.0])
    assert description == {"lateral_mm": 11.5, "side": "left", "ap_mm": -2.0, "vertical_mm": -4.0}


@pytest.mark.parametrize(
    "ac, pc, midline, message",
    [
        ([0, 12, 0], [0, 12, 0], [0, 0, 40], "distinct"),
        ([0, 12, 0], [0, -12, 0], [0, 30, 0], "collinear"),
        ([0, 12, 0], [0, -12, 0], [0, 12, 0], "collinear"),
        ([0, -12, 0], [0, 12, 0], [0, 0, 40], "swapped"),
        ([0, 12, 0], [0, -12, 0], [0, 0, -40], "below the AC-PC line"),
        ([0, 12, np.nan], [0, -12, 0], [0, 0, 40], "non-finite"),
    ],
)
def test_bad_landmarks_are_refused_with_a_reason(ac, pc, midline, message):
    with pytest.raises(DBSInputError, match=message):
        AcpcSpace.from_landmarks(ac, pc, midline)
