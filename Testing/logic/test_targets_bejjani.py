"""Bejjani construction on synthetic label maps with ellipsoidal RN and STN at known positions."""
import math

import numpy as np
import pytest
from geometry_strategies import rotation_matrix
from scipy.optimize import brentq

from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.io.volumes import Volume
from DBSSegmentationLogic.planning.targets import (
    BEJJANI_PRESETS,
    bejjani_targets,
    indirect_targets,
)
from DBSSegmentationLogic.segmentation.labels import BY_NAME

# Ellipsoids axis-aligned in AC-PC space: centre (x, y, z) and radii (mm). Deliberately asymmetric.
ELLIPSOIDS = {
    "RN_left": ((-5.2, -7.4, -6.0), (3.0, 3.6, 4.0)),
    "RN_right": ((5.6, -7.8, -6.2), (3.2, 3.4, 4.2)),
    "STN_left": ((-11.6, -1.6, -4.4), (2.9, 5.2, 2.6)),
    "STN_right": ((12.1, -0.9, -3.7), (3.1, 4.8, 2.7)),
}
LEVEL = -4.0


def section(name, level):
    """The ellipse cut by the axial plane at ``level``: centre (x, y) and semi-axes (a, b)."""
    (cx, cy, cz), (rx, ry, rz) = ELLIPSOIDS[name]
    scale = math.sqrt(1.0 - ((level - cz) / rz) ** 2)
    return np.array([cx, cy]), np.array([rx * scale, ry * scale])


def analytic_targets(d_ratio, e_ratio, level=LEVEL):
    """The exact construction on the ellipses: support functions and quadratic line crossings."""
    rn = {side: section(f"RN_{side}", level) for side in ("left", "right")}

    def support(ellipse, theta):
        centre, axes = ellipse
        normal = np.array([-math.sin(theta), math.cos(theta)])
        return centre @ normal + math.hypot(axes[0] * normal[0], axes[1] * normal[1])

    theta = brentq(lambda t: support(rn["left"], t) - support(rn["right"], t), -0.7, 0.7, xtol=1e-14)
    normal = np.array([-math.sin(theta), math.cos(theta)])
    direction = np.array([math.cos(theta), math.sin(theta)])
    line_point = support(rn["left"], theta) * normal
    midline_t = -line_point[0] / direction[0]
    crossings = {}
    for side, pick in (("left", max), ("right", min)):
        centre, axes = section(f"STN_{side}", level)
        offset = (line_point - centre) / axes
        step = direction / axes
        a, b, c = step @ step, 2 * offset @ step, offset @ offset - 1
        roots = [(-b - math.sqrt(b * b - 4 * a * c)) / (2 * a), (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)]
        t = pick(r for r in roots if (r < midline_t if side == "left" else r > midline_t))
        crossings[side] = line_point + t * direction
    c_mm = np.linalg.norm(crossings["right"] - crossings["left"])
    posterior = np.array([direction[1], -direction[0]])
    sign = {"left": -1, "right": 1}
    return {
        side: np.r_[crossings[side] + d_ratio * c_mm * sign[side] * direction + e_ratio * c_mm * posterior, level]
        for side in crossings
    }, c_mm


def make_case(head_rotation, image_rotation, axis_order, signs, spacing_mm=0.3, drop=(), moved=None):
    """Label map on an arbitrarily oriented grid, and the AC-PC space of the head.

    0.3 mm voxels: a hard label map places each border only to within half a voxel, and the
    construction carries that error into the target (measured: up to 0.18 mm at 0.3 mm voxels,
    0.33 mm at 0.5 mm voxels, over the poses below)."""
    mcp = np.array([3.0, -14.0, 6.0])
    acpc = AcpcSpace.from_landmarks(mcp + head_rotation @ [0, 13.5, 0], mcp + head_rotation @ [0, -13.5, 0],
                                    mcp + head_rotation @ [0, -5, 40])
    axes = np.eye(3)[:, list(axis_order)] * np.array(signs)
    direction = image_rotation @ axes
    box = np.array([[x, y, z] for x in (-20, 20) for y in (-17, 9) for z in (-12, 3)], dtype=float)
    in_grid = (acpc.to_ras(box) - mcp) @ direction  # grid-aligned coordinates of the box corners
    low, high = in_grid.min(0), in_grid.max(0)
    shape_ijk = np.ceil((high - low) / spacing_mm).astype(int) + 1
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = direction * spacing_mm
    ijk_to_ras[:3, 3] = mcp + direction @ low
    labels = Volume(np.zeros(shape_ijk[::-1], np.uint8), ijk_to_ras)
    k, j, i = np.indices(labels.array.shape)
    points_acpc = acpc.to_acpc(labels.ijk_to_ras_points(np.stack([i, j, k], -1)))
    for name, (centre, radii) in ELLIPSOIDS.items():
        if name in drop:
            continue
        if moved and name in moved:
            centre = moved[name]
        inside = (((points_acpc - centre) / radii) ** 2).sum(-1) <= 1.0
        labels.array[inside] = BY_NAME[name].code
    return labels, acpc


POSES = [
    (rotation_matrix(0, 0, 0), rotation_matrix(0, 0, 0), (0, 1, 2), (1, 1, 1)),
    (rotation_matrix(0.3, -0.2, 0.25), rotation_matrix(0, 0, 0), (0, 1, 2), (-1, -1, 1)),
    (rotation_matrix(-0.25, 0.15, -0.4), rotation_matrix(0.5, 0.7, -0.3), (2, 0, 1), (1, -1, 1)),
    (rotation_matrix(0.1, 0.35, 0.05), rotation_matrix(-0.9, 0.2, 1.1), (1, 2, 0), (-1, 1, -1)),
]


@pytest.mark.parametrize("pose", range(len(POSES)))
@pytest.mark.parametrize("preset", ["stn", "psa"])
def test_target_equals_the_analytic_answer(pose, preset):
    labels, acpc = make_case(*POSES[pose])
    result = bejjani_targets(labels, acpc, preset=preset)
    expected, c_mm = analytic_targets(*BEJJANI_PRESETS[preset])
    assert result.c_mm == pytest.approx(c_mm, abs=0.25)
    for side in ("left", "right"):
        target = result.sides[side]
        assert target.ok, target.failure
        error_mm = np.linalg.norm(np.array(target.target_acpc) - expected[side])
        assert error_mm <= 0.25, (side, error_mm)
        # The RAS target is the same point, and it lies on its own side of the head.
        assert np.linalg.norm(acpc.to_acpc(target.target_ras) - expected[side]) <= 0.25
        assert np.sign(target.target_acpc[0]) == (-1 if side == "left" else 1)


def test_custom_ratios_and_level_sensitivity():
    labels, acpc = make_case(*POSES[2])
    result = bejjani_targets(labels, acpc, preset="custom", d_ratio=0.15, e_ratio=0.1)
    expected, _ = analytic_targets(0.15, 0.1)
    for side in ("left", "right"):
        assert np.linalg.norm(np.array(result.sides[side].target_acpc) - expected[side]) <= 0.25
        # 1 mm deeper the construction still works; 1 mm higher the line misses the right STN.
        deeper, _ = analytic_targets(0.15, 0.1, LEVEL - 1.0)
        moved = np.linalg.norm(deeper[side] - expected[side])
        assert moved > 1.0  # the construction is that sensitive to the level
        assert result.level_sensitivity_mm[side]["-1"] == pytest.approx(moved, abs=0.3)
    with pytest.raises(ValueError):
        analytic_targets(0.15, 0.1, LEVEL + 1.0)
    assert result.level_sensitivity_mm["right"]["+1"] is None


@pytest.mark.parametrize("flip_axis", [0, 1, 2])
def test_flipping_and_permuting_the_array_leaves_targets_and_sides_unchanged(flip_axis):
    labels, acpc = make_case(*POSES[1])
    reference = bejjani_targets(labels, acpc)
    # Flip one array axis and fix the geometry so every voxel keeps its physical place.
    flipped_array = np.flip(labels.array, axis=flip_axis)
    ijk_axis = 2 - flip_axis
    matrix = labels.ijk_to_ras.copy()
    matrix[:3, 3] += matrix[:3, ijk_axis] * (labels.array.shape[flip_axis] - 1)
    matrix[:3, ijk_axis] *= -1
    # Then permute i and j.
    permuted_array = np.swapaxes(flipped_array, 1, 2)
    matrix = matrix[:, [1, 0, 2, 3]]
    moved = bejjani_targets(Volume(np.ascontiguousarray(permuted_array), matrix), acpc)
    for side in ("left", "right"):
        assert np.linalg.norm(np.subtract(moved.sides[side].target_ras, reference.sides[side].target_ras)) <= 0.1
        assert moved.sides[side].side == side and moved.sides[side].target_acpc[0] * (1 if side == "right" else -1) > 0


def test_missing_red_nucleus_fails_that_side_only():
    labels, acpc = make_case(*POSES[0], drop=("RN_left",))
    result = bejjani_targets(labels, acpc)
    assert not result.sides["left"].ok and "left red nucleus is missing" in result.sides["left"].failure
    assert result.sides["right"].ok and any("only one red nucleus" in n for n in result.sides["right"].notes)
    # The right target stays close to the two-nuclei answer (the line is nearly parallel to x here).
    expected, _ = analytic_targets(*BEJJANI_PRESETS["stn"])
    assert np.linalg.norm(np.array(result.sides["right"].target_acpc) - expected["right"]) <= 1.0


def test_line_missing_an_stn_fails_that_side_only():
    # Move the right STN 12 mm anterior: the RN tangent no longer crosses it.
    labels, acpc = make_case(*POSES[0], moved={"STN_right": (12.1, 11.0, -3.7)})
    result = bejjani_targets(labels, acpc)
    assert not result.sides["right"].ok and "misses the right STN" in result.sides["right"].failure
    assert result.sides["left"].ok


def test_inadequate_segmentation_blocks_that_side_only():
    labels, acpc = make_case(*POSES[0])
    result = bejjani_targets(labels, acpc, inadequate_sides={"left": "STN fragmented"})
    assert not result.sides["left"].ok and "flagged inadequate: STN fragmented" in result.sides["left"].failure
    assert result.sides["right"].ok


def test_indirect_targets_relative_to_the_mcp():
    head = rotation_matrix(0.2, -0.1, 0.3)
    mcp = np.array([1.0, -10.0, 4.0])
    acpc = AcpcSpace.from_landmarks(mcp + head @ [0, 12, 0], mcp + head @ [0, -12, 0], mcp + head @ [0, 0, 30])
    targets = indirect_targets(acpc)
    np.testing.assert_allclose(targets["stn"]["left"]["ras"], mcp + head @ [-12, -2.5, -4], atol=1e-9)
    np.testing.assert_allclose(targets["gpi"]["right"]["acpc"], [20, 2.5, -4], atol=1e-12)
