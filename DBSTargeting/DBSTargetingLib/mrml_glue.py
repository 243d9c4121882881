"""Conversion between MRML nodes and the logic's plain types (DESIGN §2).

This is the only place that knows how a volume node or a markups node stores its data. It uses MRML
classes through the node objects it is given and ``vtk`` for image data and matrices; it imports neither
``slicer.util`` nor Qt, so it runs unchanged inside Slicer and under the ``slicer-core`` package
(``Testing/mrml``).

Geometry is world RAS millimetres throughout. A volume's array is indexed ``[k, j, i]`` as
``slicer.util.arrayFromVolume`` returns it, and ``ijk_to_ras`` maps a voxel index ``(i, j, k, 1)`` to RAS.
"""
from __future__ import annotations

import numpy as np
import vtk
from vtk.util import numpy_support

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.markups import LANDMARK_ALIASES, find_landmarks
from DBSSegmentationLogic.io.volumes import Volume

#: The points a frame plan needs, by the planner's landmark names.
PLAN_LANDMARKS = tuple(LANDMARK_ALIASES)

#: numpy types that VTK image data cannot hold (bool) or that Slicer does not display (64-bit integers):
#: stored as the narrower type when every value fits.
_NARROWED_DTYPES = {
    np.dtype(bool): np.dtype(np.uint8),
    np.dtype(np.int64): np.dtype(np.int32),
    np.dtype(np.uint64): np.dtype(np.uint32),
}

#: Orthogonality tolerance on the IJK-to-RAS direction columns (Slicer stores orthogonal grids only).
_ORTHOGONAL_TOLERANCE = 1e-6


def matrix_from_vtk(vtk_matrix) -> np.ndarray:
    """A ``vtkMatrix4x4`` as a 4x4 numpy array."""
    return np.array([[vtk_matrix.GetElement(row, col) for col in range(4)] for row in range(4)])


def vtk_matrix_from_array(matrix) -> vtk.vtkMatrix4x4:
    """A 4x4 array-like as a new ``vtkMatrix4x4``."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4):
        raise DBSInputError(f"expected a 4x4 matrix, got shape {matrix.shape}")
    vtk_matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            vtk_matrix.SetElement(row, col, float(matrix[row, col]))
    return vtk_matrix


def remove_node(scene, node) -> None:
    """Remove ``node`` from ``scene`` with its display nodes, its storage node and its subject-hierarchy item."""
    from .subject_hierarchy import remove_item_of

    remove_item_of(scene, node)
    if node.IsA("vtkMRMLDisplayableNode"):
        for display in [node.GetNthDisplayNode(index) for index in range(node.GetNumberOfDisplayNodes())]:
            if display is not None:
                scene.RemoveNode(display)
    if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is not None:
        scene.RemoveNode(node.GetStorageNode())
    scene.RemoveNode(node)


def _parent_to_world(node) -> np.ndarray:
    """4x4 matrix from the node's local coordinates to world RAS; raises for a non-linear transform."""
    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return np.eye(4)
    if not transform_node.IsTransformToWorldLinear():
        raise DBSInputError(
            f"volume '{node.GetName()}' is under a non-linear transform ('{transform_node.GetName()}'): "
            "harden the transform first"
        )
    to_world = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(to_world)
    return matrix_from_vtk(to_world)


def _storable_array(array: np.ndarray) -> np.ndarray:
    """C-ordered copy of ``array`` in a voxel type that VTK stores and Slicer displays."""
    narrowed = _NARROWED_DTYPES.get(array.dtype)
    if narrowed is not None:
        if array.size and array.dtype != bool:
            info = np.iinfo(narrowed)
            if array.min() < info.min or array.max() > info.max:
                raise DBSInputError(f"voxel values of type {array.dtype} do not fit in {narrowed}")
        array = array.astype(narrowed)
    return np.ascontiguousarray(array)


def update_volume_node(node, volume: Volume) -> None:
    """Replace a volume node's voxels and geometry with those of ``volume`` (voxel values are copied).

    The node's own IJK-to-RAS matrix is set; a parent transform of the node, if any, is left in place.
    """
    direction = volume.direction_ras
    gram = direction.T @ direction
    if not np.allclose(gram, np.eye(3), atol=_ORTHOGONAL_TOLERANCE):
        raise DBSInputError("volume axes are not orthogonal: a Slicer volume node cannot hold this grid")
    array = _storable_array(volume.array)
    k_size, j_size, i_size = array.shape

    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    image = vtk.vtkImageData()
    image.SetDimensions(i_size, j_size, k_size)
    image.GetPointData().SetScalars(scalars)
    # Slicer keeps image data at origin 0, spacing 1: the whole geometry lives in the node's IJK-to-RAS.

    was_modifying = node.StartModify()
    node.SetIJKToRASMatrix(vtk_matrix_from_array(volume.ijk_to_ras))
    node.SetAndObserveImageData(image)
    node.EndModify(was_modifying)


def volume_node_from_volume(scene, volume: Volume, name: str, label_map: bool = False):
    """Add a new volume node holding ``volume`` to ``scene`` and return it.

    ``label_map`` makes a ``vtkMRMLLabelMapVolumeNode`` (shown with a color table) instead of a
    ``vtkMRMLScalarVolumeNode``. Default display nodes are created as ``slicer.util.addVolumeFromArray``
    does.
    """
    class_name = "vtkMRMLLabelMapVolumeNode" if label_map else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name)
    if node is None:
        raise DBSInputError(f"the scene cannot create a {class_name}")
    update_volume_node(node, volume)
    node.CreateDefaultDisplayNodes()
    return node


def volume_from_volume_node(node, world: bool = True) -> Volume:
    """A copy of a scalar volume node's voxels and its geometry in world RAS.

    A linear parent transform is folded into ``ijk_to_ras`` (so positions are world RAS, as everywhere
    in the logic); a non-linear one raises :class:`DBSInputError`. With ``world=False`` the parent
    transform is left out: the geometry is the node's own (as the volume was loaded).
    """
    if node is None:
        raise DBSInputError("no volume selected")
    image = node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise DBSInputError(f"volume '{node.GetName()}' has no voxels")
    if image.GetNumberOfScalarComponents() != 1:
        raise DBSInputError(
            f"volume '{node.GetName()}' has {image.GetNumberOfScalarComponents()} components per voxel;"
            " expected a scalar volume"
        )
    i_size, j_size, k_size = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k_size, j_size, i_size).copy()

    ijk_to_local = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_local)
    ijk_to_ras = (_parent_to_world(node) if world else np.eye(4)) @ matrix_from_vtk(ijk_to_local)
    return Volume(array, ijk_to_ras)


def markups_points_from_node(node) -> dict[str, np.ndarray]:
    """Defined control points of a markups node as ``{label: RAS position (3,)}`` in world mm.

    Parent transforms (linear or not) are applied, as in ``GetNthControlPointPositionWorld``. Points
    whose position is not defined yet (being placed, or skipped) are left out. Labels are stripped of
    surrounding blanks; an empty or repeated label raises :class:`DBSInputError`, since a point must be
    identified by its label alone.
    """
    if node is None:
        raise DBSInputError("no markups node selected")
    points: dict[str, np.ndarray] = {}
    position = [0.0, 0.0, 0.0]
    for index in range(node.GetNumberOfControlPoints()):
        if node.GetNthControlPointPositionStatus(index) != node.PositionDefined:
            continue
        label = node.GetNthControlPointLabel(index).strip()
        if not label:
            raise DBSInputError(f"point {index + 1} of '{node.GetName()}' has no label")
        if label in points:
            raise DBSInputError(f"label '{label}' is used by more than one point of '{node.GetName()}'")
        node.GetNthControlPointPositionWorld(index, position)
        points[label] = np.array(position, dtype=float)
    return points



def landmarks_from_nodes(nodes, required=PLAN_LANDMARKS) -> dict[str, np.ndarray]:
    """The planner's landmarks (``ac``, ``pc``, ``midline``, ``target``, ``entry``) from markups nodes.

    Point labels are matched as :func:`DBSSegmentationLogic.io.markups.find_landmarks` does (e.g. "AC" or
    "anterior commissure"). ``None`` entries and a node given twice are skipped. A landmark found in two
    nodes, or a required one found in none, raises :class:`DBSInputError`. Returned in ``required`` order.
    """
    found: dict[str, np.ndarray] = {}
    found_in: dict[str, str] = {}
    searched = []
    for node in nodes:
        if node is None or any(node is other for other in searched):
            continue
        searched.append(node)
        for name, position in find_landmarks(markups_points_from_node(node)).items():
            if name in found:
                raise DBSInputError(
                    f"the {name} point is in both '{found_in[name]}' and '{node.GetName()}'; keep one"
                )
            found[name] = position
            found_in[name] = node.GetName()
    if not searched:
        raise DBSInputError("no markups node selected")
    missing = [name for name in required if name not in found]
    if missing:
        where = ", ".join(f"'{node.GetName()}'" for node in searched)
        raise DBSInputError(f"no point labelled {', '.join(missing)} in {where}")
    return {name: found[name] for name in required}


#: Attribute marking the nodes the module makes (plan, post-op, segmentation results), by role.
ROLE_ATTRIBUTE = "DBSTargeting.role"


def _nodes_by_class(scene, class_name: str) -> list:
    return [scene.GetNthNodeByClass(n, class_name) for n in range(scene.GetNumberOfNodesByClass(class_name))]


def first_landmarks_node(scene):
    """The first point list of the scene that holds AC, PC and the midline point, skipping the lists the
    module made itself (its "Targets", "Lead tips", ... carry a role): what the panel may preselect.
    ``None`` when there is none: the module never preselects a list it cannot plan with."""
    for node in _nodes_by_class(scene, "vtkMRMLMarkupsFiducialNode"):
        if node.GetAttribute(ROLE_ATTRIBUTE):
            continue
        try:
            landmarks_from_nodes([node], required=("ac", "pc", "midline"))
        except DBSInputError:
            continue
        return node
    return None


def first_input_volume(scene):
    """The first scalar volume the module did not make (never its "Structures uncertainty" map), or ``None``:
    what the panel may preselect as the pre-operative MRI."""
    return next((node for node in _nodes_by_class(scene, "vtkMRMLScalarVolumeNode")
                 if not node.GetAttribute(ROLE_ATTRIBUTE)), None)


def _is_under(node, transform_node) -> bool:
    parent = node.GetParentTransformNode()
    while parent is not None:
        if parent is transform_node:
            return True
        parent = parent.GetParentTransformNode()
    return False


def frame_space_from_transform_node(transform_node, mri_node=None):
    """The image-to-frame map (``DBSSegmentationLogic.geometry.frame.FrameSpace``) of a Slicer transform
    node from a frame registration, or ``None`` (virtual frame) when no node is given.

    Slicer's convention, the one README "Transform files" describes: the node moves the image into the
    frame, so its matrix "to parent" maps image RAS to frame RAS (frame centre at the origin); its file
    holds the inverse. The matrix is read here, once, and nowhere else. When the MRI itself is placed
    under the node, world RAS already is frame RAS and the map is the identity. The node must be rigid
    and not under another transform.
    """
    from DBSSegmentationLogic.geometry.frame import FrameSpace

    if transform_node is None:
        return None
    name = transform_node.GetName()
    if not transform_node.IsA("vtkMRMLTransformNode") or not transform_node.IsLinear():
        raise DBSInputError(f"the image-to-frame transform '{name}' is not linear: use the rigid result of a frame registration")
    if transform_node.GetParentTransformNode() is not None:
        raise DBSInputError(f"the image-to-frame transform '{name}' is under another transform: harden or move it to the top level")
    if mri_node is not None and _is_under(mri_node, transform_node):
        return FrameSpace.from_matrix(np.eye(4), f"real frame: '{name}' (MRI shown in the frame)")
    to_parent = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToParent(to_parent)
    return FrameSpace.from_matrix(matrix_from_vtk(to_parent), f"real frame: image-to-frame transform '{name}'")


def show_as_foreground(scene, volume_node, opacity: float = 0.4) -> int:
    """Show ``volume_node`` over the background of every slice view (foreground layer, ``opacity``);
    returns the number of slice views changed."""
    composites = _nodes_by_class(scene, "vtkMRMLSliceCompositeNode")
    for composite in composites:
        composite.SetForegroundVolumeID(volume_node.GetID() if volume_node is not None else None)
        composite.SetForegroundOpacity(opacity)
    return len(composites)
