"""Hypothesis strategies shared by the geometry tests: plausible head poses and landmarks."""
import numpy as np
import SimpleITK as sitk
from hypothesis import strategies as st

angle_rad = st.floats(-np.radians(40), np.radians(40))
coordinate_mm = st.floats(-150, 150)


def rotation_matrix(a, b, c) -> np.ndarray:
    return np.array(sitk.Euler3DTransform((0, 0, 0), a, b, c).GetMatrix()).reshape(3, 3)


@st.composite
def head_poses(draw):
    """(rotation 3x3, MCP RAS): a head turned up to 40° about each axis, anywhere in the scanner."""
    rotation = rotation_matrix(draw(angle_rad), draw(angle_rad), draw(angle_rad))
    mcp = np.array([draw(coordinate_mm) for _ in range(3)])
    return rotation, mcp


@st.composite
def landmarks(draw):
    """(ac, pc, midline, rotation, mcp) in RAS, with the AC-PC axes = columns of ``rotation``."""
    rotation, mcp = draw(head_poses())
    half_length = draw(st.floats(8, 18))
    midline_acpc = np.array([0.0, draw(st.floats(-30, 30)), draw(st.floats(5, 60))])
    to_ras = lambda p: rotation @ p + mcp  # noqa: E731
    ac = to_ras(np.array([0.0, half_length, 0.0]))
    pc = to_ras(np.array([0.0, -half_length, 0.0]))
    return ac, pc, to_ras(midline_acpc), rotation, mcp


points_mm = st.tuples(coordinate_mm, coordinate_mm, coordinate_mm).map(np.array)
