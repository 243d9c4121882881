"""MRML glue against Slicer's real MRML classes: exact geometry of volumes and markups (DESIGN §4, §8)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
import vtk  # noqa: E402  (slicer-core's pinned vtk)
from DBSTargetingLib.mrml_glue import (
    PLAN_LANDMARKS,
    landmarks_from_nodes,
    markups_points_from_node,
    matrix_from_vtk,
    update_volume_node,
    volume_from_volume_node,
    volume_node_from_volume,
    vtk_matrix_from_array,
)

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.markups import (
    find_landmarks,
    read_markups_points,
    write_markups_points,
)
from DBSSegmentationLogic.io.volumes import Volume, read_volume, write_volume

TOLERANCE_MM = 0.01


def rotation_deg(about_r: float, about_a: float, about_s: float) -> np.ndarray:
    """Rotation about R, then A, then S (degrees)."""
    rx, ry, rz = np.radians([about_r, about_a, about_s])
    x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return z @ y @ x


def oblique_volume(dtype=np.int16, left_handed: bool = False) -> Volume:
    """An oblique, anisotropic volume with distinct sizes along i, j, k and a distinct value per voxel."""
    spacing_mm = np.array([0.7, 1.3, 2.9])
    direction = rotation_deg(17.0, -32.0, 71.0)
    if left_handed:  # e.g. a radiological axis order: i runs to the left
        direction = direction @ np.diag([-1.0, 1.0, 1.0])
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = direction @ np.diag(spacing_mm)
    ijk_to_ras[:3, 3] = [-41.25, 17.5, 63.125]
    k_size, j_size, i_size = 4, 5, 6
    array = np.arange(k_size * j_size * i_size).reshape(k_size, j_size, i_size).astype(dtype)
    return Volume(array, ijk_to_ras)


def all_ijk(shape_kji) -> np.ndarray:
    """Every voxel index (n, 3) in i, j, k order."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape_kji), indexing="ij")
    return np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)


def node_voxel_ras(node) -> np.ndarray:
    """RAS of every voxel of a node, computed by the node's own vtkMatrix4x4 (world: parent transform too)."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    transform_node = node.GetParentTransformNode()
    if transform_node is not None:
        to_world = vtk.vtkMatrix4x4()
        transform_node.GetMatrixTransformToWorld(to_world)
        vtk.vtkMatrix4x4.Multiply4x4(to_world, ijk_to_ras, ijk_to_ras)
    dims = node.GetImageData().GetDimensions()
    return np.array([ijk_to_ras.MultiplyPoint([*map(float, ijk), 1.0])[:3] for ijk in all_ijk(dims[::-1])])


def node_voxel_values(node) -> np.ndarray:
    """Voxel values of a node read one by one through vtkImageData (i, j, k), in all_ijk order."""
    image = node.GetImageData()
    dims = image.GetDimensions()
    return np.array([image.GetScalarComponentAsDouble(int(i), int(j), int(k), 0) for i, j, k in all_ijk(dims[::-1])])


@pytest.mark.parametrize("left_handed", [False, True])
def test_volume_node_places_every_voxel_where_the_volume_says(mrml, left_handed):
    volume = oblique_volume(left_handed=left_handed)

    node = volume_node_from_volume(mrml.scene, volume, "oblique")

    assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetName() == "oblique"
    assert node.GetImageData().GetDimensions() == volume.shape_ijk
    expected_ras = volume.ijk_to_ras_points(all_ijk(volume.array.shape))
    np.testing.assert_allclose(node_voxel_ras(node), expected_ras, atol=TOLERANCE_MM, rtol=0)
    np.testing.assert_array_equal(node_voxel_values(node), volume.array.ravel())
    np.testing.assert_allclose(node.GetSpacing(), volume.spacing_mm, atol=1e-9)
    np.testing.assert_allclose(node.GetOrigin(), volume.origin_ras, atol=1e-9)
    # Same array layout as Slicer's own accessor
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), volume.array)
    assert node.GetDisplayNode() is not None


def test_round_trip_node_to_volume_to_node_keeps_every_voxel_position(mrml):
    original = volume_node_from_volume(mrml.scene, oblique_volume(np.float32), "original")

    volume = volume_from_volume_node(original)
    copy = volume_node_from_volume(mrml.scene, volume, "copy")

    assert volume.array.dtype == np.float32
    np.testing.assert_array_equal(volume.array, slicer.util.arrayFromVolume(original))
    np.testing.assert_allclose(node_voxel_ras(copy), node_voxel_ras(original), atol=TOLERANCE_MM, rtol=0)
    np.testing.assert_allclose(
        volume.ijk_to_ras_points(all_ijk(volume.array.shape)), node_voxel_ras(original), atol=TOLERANCE_MM, rtol=0
    )
    np.testing.assert_array_equal(node_voxel_values(copy), node_voxel_values(original))
    # The Volume owns its voxels: changing the node afterwards leaves it alone
    slicer.util.arrayFromVolume(original)[:] = -1
    assert volume.array.min() == 0


def test_slicer_file_writer_and_logic_reader_agree_on_ras(mrml, tmp_path):
    """Slicer's own NRRD writer and the logic's SimpleITK reader (LPS converted once) see the same voxels."""
    volume = oblique_volume(left_handed=True)
    node = volume_node_from_volume(mrml.scene, volume, "written")
    path = tmp_path / "written.nrrd"
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1

    read_back = read_volume(path)

    np.testing.assert_array_equal(read_back.array, volume.array)
    np.testing.assert_allclose(read_back.ijk_to_ras, volume.ijk_to_ras, atol=1e-4)


def test_logic_file_writer_and_slicer_reader_agree_on_ras(mrml, tmp_path):
    volume = oblique_volume(np.float32)
    path = write_volume(volume, tmp_path / "logic.nii.gz")
    node = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "read")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1

    read_back = volume_from_volume_node(node)

    np.testing.assert_array_equal(read_back.array, volume.array)
    np.testing.assert_allclose(
        read_back.ijk_to_ras_points(all_ijk(volume.array.shape)),
        volume.ijk_to_ras_points(all_ijk(volume.array.shape)),
        atol=TOLERANCE_MM,
        rtol=0,
    )


def test_linear_parent_transform_is_folded_into_world_geometry(mrml):
    node = volume_node_from_volume(mrml.scene, oblique_volume(), "moved")
    parent_to_world = np.eye(4)
    parent_to_world[:3, :3] = rotation_deg(0.0, 0.0, 90.0)
    parent_to_world[:3, 3] = [10.0, -5.0, 2.5]
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "move")
    transform.SetMatrixTransformToParent(vtk_matrix_from_array(parent_to_world))
    node.SetAndObserveTransformNodeID(transform.GetID())

    volume = volume_from_volume_node(node)

    np.testing.assert_allclose(volume.ijk_to_ras_points(all_ijk(volume.array.shape)), node_voxel_ras(node), atol=TOLERANCE_MM)
    # a voxel at the local origin lands where the transform sends it
    np.testing.assert_allclose(volume.origin_ras, parent_to_world[:3, :3] @ oblique_volume().origin_ras + [10.0, -5.0, 2.5], atol=1e-9)


def test_non_linear_parent_transform_is_refused(mrml):
    node = volume_node_from_volume(mrml.scene, oblique_volume(), "warped")
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    grid = slicer.vtkOrientedGridTransform()
    displacement = vtk.vtkImageData()
    displacement.SetDimensions(2, 2, 2)
    displacement.AllocateScalars(vtk.VTK_DOUBLE, 3)
    displacement.GetPointData().GetScalars().Fill(1.0)
    grid.SetDisplacementGridData(displacement)
    transform.SetAndObserveTransformToParent(grid)
    node.SetAndObserveTransformNodeID(transform.GetID())

    with pytest.raises(DBSInputError, match="non-linear"):
        volume_from_volume_node(node)


def test_label_map_node_and_voxel_types_slicer_cannot_hold(mrml):
    labels = oblique_volume().with_array((np.arange(120).reshape(4, 5, 6) % 7).astype(np.int64))

    node = volume_node_from_volume(mrml.scene, labels, "labels", label_map=True)

    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    back = volume_from_volume_node(node)
    assert back.array.dtype == np.int32
    np.testing.assert_array_equal(back.array, labels.array)

    mask = labels.with_array(labels.array > 3)
    update_volume_node(node, mask)
    assert volume_from_volume_node(node).array.dtype == np.uint8
    np.testing.assert_array_equal(volume_from_volume_node(node).array, mask.array)

    with pytest.raises(DBSInputError, match="do not fit"):
        update_volume_node(node, labels.with_array(np.full((4, 5, 6), 2**40, dtype=np.int64)))


def test_sheared_grid_is_refused(mrml):
    sheared = oblique_volume()
    sheared.ijk_to_ras[0, 1] += 0.5
    with pytest.raises(DBSInputError, match="not orthogonal"):
        volume_node_from_volume(mrml.scene, sheared, "sheared")


def test_volume_without_voxels_is_refused(mrml):
    node = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(DBSInputError, match="no voxels"):
        volume_from_volume_node(node)


def test_matrix_conversions_are_inverse():
    matrix = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_array_equal(matrix_from_vtk(vtk_matrix_from_array(matrix)), matrix)


# --- markups -------------------------------------------------------------------------------------------

LANDMARKS_RAS = {
    "AC": [0.4, 13.1, -2.2],
    "PC": [-0.3, -12.6, -1.7],
    "midline": [0.1, 2.0, 38.9],
    "target": [-11.85, -2.45, -5.95],
    "entry": [-35.2, 40.75, 62.0],
}


def fiducial_node(scene, points_ras: dict, name: str = "F"):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for label, ras in points_ras.items():
        node.AddControlPoint(vtk.vtkVector3d(*ras), label)
    return node


def test_markups_points_by_label_in_ras(mrml):
    node = fiducial_node(mrml.scene, LANDMARKS_RAS)

    points = markups_points_from_node(node)

    assert list(points) == list(LANDMARKS_RAS)
    for label, ras in LANDMARKS_RAS.items():
        np.testing.assert_allclose(points[label], ras, atol=TOLERANCE_MM, rtol=0)


def test_markups_points_are_in_world_coordinates_under_a_transform(mrml):
    node = fiducial_node(mrml.scene, LANDMARKS_RAS)
    parent_to_world = np.eye(4)
    parent_to_world[:3, :3] = rotation_deg(10.0, 20.0, 30.0)
    parent_to_world[:3, 3] = [1.0, 2.0, 3.0]
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "tilt")
    transform.SetMatrixTransformToParent(vtk_matrix_from_array(parent_to_world))
    node.SetAndObserveTransformNodeID(transform.GetID())

    points = markups_points_from_node(node)

    for label, ras in LANDMARKS_RAS.items():
        expected = parent_to_world[:3, :3] @ np.array(ras) + parent_to_world[:3, 3]
        np.testing.assert_allclose(points[label], expected, atol=TOLERANCE_MM, rtol=0)


def test_markups_file_written_by_the_logic_loads_in_slicer_at_the_same_ras(mrml, tmp_path):
    """The logic writes LPS (Slicer's default); Slicer's markups logic must read the same RAS points back."""
    path = write_markups_points(tmp_path / "landmarks.mrk.json", LANDMARKS_RAS, coordinate_system="LPS")

    node_id = mrml.logics["Markups"].LoadMarkups(str(path), "landmarks")
    points = markups_points_from_node(mrml.scene.GetNodeByID(node_id))

    assert list(points) == list(LANDMARKS_RAS)
    for label, ras in LANDMARKS_RAS.items():
        np.testing.assert_allclose(points[label], ras, atol=TOLERANCE_MM, rtol=0)


def test_markups_file_written_by_slicer_reads_in_the_logic_at_the_same_ras(mrml, tmp_path):
    node = fiducial_node(mrml.scene, LANDMARKS_RAS)
    path = tmp_path / "from_slicer.mrk.json"
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1
    assert json.loads(path.read_text())["markups"][0]["coordinateSystem"] == "LPS"

    points = read_markups_points(path)

    assert list(points) == list(LANDMARKS_RAS)
    for label, ras in LANDMARKS_RAS.items():
        np.testing.assert_allclose(points[label], ras, atol=TOLERANCE_MM, rtol=0)


def test_points_without_a_position_are_left_out(mrml):
    node = fiducial_node(mrml.scene, {"AC": [1.0, 2.0, 3.0], "PC": [4.0, 5.0, 6.0]})
    node.SetNthControlPointPositionMissing(1)

    assert list(markups_points_from_node(node)) == ["AC"]


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["AC", " AC "], "more than one point"), (["AC", "  "], "no label")],
)
def test_ambiguous_or_empty_labels_are_refused(mrml, labels, message):
    node = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "bad")
    for n, label in enumerate(labels):
        node.AddControlPoint(vtk.vtkVector3d(n, 0.0, 0.0), label)
    with pytest.raises(DBSInputError, match=message):
        markups_points_from_node(node)




def test_plan_landmarks_from_one_or_two_nodes(mrml):
    labelled = {"ac": "AC", "pc": "Posterior commissure", "midline": "mid", "target": "Target", "entry": "ENTRY"}
    positions = dict(zip(PLAN_LANDMARKS, LANDMARKS_RAS.values()))
    all_points = fiducial_node(mrml.scene, {labelled[name]: positions[name] for name in PLAN_LANDMARKS}, "all")

    from_one = landmarks_from_nodes([all_points, None, all_points])

    assert list(from_one) == list(PLAN_LANDMARKS)
    for name in PLAN_LANDMARKS:
        np.testing.assert_allclose(from_one[name], positions[name], atol=TOLERANCE_MM, rtol=0)

    acpc = fiducial_node(mrml.scene, {"AC": positions["ac"], "PC": positions["pc"], "midline": positions["midline"]}, "acpc")
    trajectory = fiducial_node(mrml.scene, {"target": positions["target"], "entry": positions["entry"]}, "traj")
    from_two = landmarks_from_nodes([acpc, trajectory])
    for name in PLAN_LANDMARKS:
        np.testing.assert_allclose(from_two[name], positions[name], atol=TOLERANCE_MM, rtol=0)

    with pytest.raises(DBSInputError, match="no point labelled target, entry in 'acpc'"):
        landmarks_from_nodes([acpc])
    with pytest.raises(DBSInputError, match="the ac point is in both 'all' and 'acpc'"):
        landmarks_from_nodes([all_points, acpc])
    with pytest.raises(DBSInputError, match="no markups node selected"):
        landmarks_from_nodes([None, None])



def test_sample_case_landmarks_load_in_slicer_as_the_logic_reads_them(mrml):
    path = Path(__file__).resolve().parents[2] / "Resources" / "SampleCase" / "landmarks.mrk.json"
    if not path.is_file():
        pytest.skip(f"no sample case landmarks at {path}")

    node_id = mrml.logics["Markups"].LoadMarkups(str(path), "sample")
    from_slicer = landmarks_from_nodes([mrml.scene.GetNodeByID(node_id)])

    from_logic = find_landmarks(read_markups_points(path))
    for name in PLAN_LANDMARKS:
        np.testing.assert_allclose(from_slicer[name], from_logic[name], atol=TOLERANCE_MM, rtol=0)


def test_glue_needs_neither_slicer_util_nor_qt():
    """The glue must import outside the Slicer app: only vtk, numpy and the logic package."""
    code = (
        "import sys, DBSTargetingLib.mrml_glue, DBSTargetingLib.postop_nodes\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('slicer', 'qt', 'ctk', 'PythonQt'))\n"
        "assert not bad, bad\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "DBSTargeting"), str(repo)])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
