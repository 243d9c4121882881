"""Label map <-> segmentation node, closed surfaces and 3D models (DESIGN §2: MRML glue only).

Segment names and colours come from ``DBSSegmentationLogic.segmentation.labels`` (the one place that knows the
codes). Where the DICOM CNS segmentation list (CID 7153) has a code for a nucleus, the segment also
carries the standard terminology (SNOMED CT, with the laterality as modifier); for the others the
name and colour are all there is.

Like ``mrml_glue`` this imports only ``vtk``, MRML classes (through the ``slicer`` package's wrapped
C++ classes) and numpy: no Qt, no ``slicer.util``, so it runs inside Slicer and under ``slicer-core``.
"""
from __future__ import annotations

import numpy as np
import vtk

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import Volume
from DBSSegmentationLogic.segmentation import labels as label_codes

from .mrml_glue import remove_node, volume_from_volume_node, volume_node_from_volume
from .subject_hierarchy import place_in_folder

#: Name of the colour table node holding our label codes, names and colours.
COLOR_TABLE_NAME = "DBS structures"

#: SNOMED CT codes of the nuclei that the DICOM CNS segmentation list (CID 7153) names.
#: The STN, the red nucleus and the pallidal segments have no entry there.
_SNOMED_TYPE = {"SN": ("70007007", "Substantia nigra")}
_SNOMED_SIDE = {"left": ("7771000", "Left"), "right": ("24028007", "Right")}
_ANATOMICAL_STRUCTURE = "SCT^123037004^Anatomical Structure"


def terminology_entry(structure) -> str:
    """Slicer terminology string for a structure, or "" when no standard code exists."""
    if structure.nucleus not in _SNOMED_TYPE:
        return ""
    type_code, type_meaning = _SNOMED_TYPE[structure.nucleus]
    side_code, side_meaning = _SNOMED_SIDE[structure.side]
    return (
        "Segmentation category and type - 3D Slicer General Anatomy list"
        f"~{_ANATOMICAL_STRUCTURE}~SCT^{type_code}^{type_meaning}~SCT^{side_code}^{side_meaning}"
        "~Anatomic codes - DICOM master list~^^~^^"
    )


def color_table_node(scene):
    """The scene's colour table of our structures (made once, then reused)."""
    node = scene.GetFirstNodeByName(COLOR_TABLE_NAME)
    if node is not None and node.IsA("vtkMRMLColorTableNode"):
        return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_TABLE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(label_codes.NUM_CLASSES)
    node.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for structure in label_codes.STRUCTURES:
        node.SetColor(structure.code, structure.name, *(c / 255.0 for c in structure.colour_rgb), 1.0)
    return node


def segmentation_node_from_labels(scene, labels: Volume, name: str, reference_volume_node=None):
    """A new segmentation node with one segment per structure present in ``labels``.

    Segment names are the structure names (``STN_left`` …), colours those of the label table;
    the segmentation's geometry is the label map's own grid. ``reference_volume_node`` (the MRI) is
    set as the segmentation's reference geometry node when given. Unknown codes raise.
    """
    from slicer import vtkSlicerSegmentationsModuleLogic

    codes = {int(c) for c in np.unique(labels.array)} - {0}
    unknown = sorted(codes - set(label_codes.BY_CODE))
    if unknown:
        raise DBSInputError(f"label map holds codes {unknown} that are not structures of this module")
    label_node = volume_node_from_volume(scene, labels.with_array(labels.array.astype(np.uint8)), f"{name} labels", label_map=True)
    try:
        label_node.GetDisplayNode().SetAndObserveColorNodeID(color_table_node(scene).GetID())
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        if not vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label_node, node, ""):
            remove_node(scene, node)
            raise DBSInputError(f"the label map could not be imported into segmentation '{name}'")
    finally:
        remove_node(scene, label_node)
    segmentation = node.GetSegmentation()
    for segment_id in list(segmentation.GetSegmentIDs()):
        segment = segmentation.GetSegment(segment_id)
        structure = label_codes.BY_CODE[segment.GetLabelValue()]
        segment.SetName(structure.name)
        segment.SetColor(*(c / 255.0 for c in structure.colour_rgb))
        entry = terminology_entry(structure)
        if entry:
            segment.SetTerminology(entry)
    if reference_volume_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    return node


def segment_names_and_colours(node) -> dict[str, tuple]:
    """``{segment name: (r, g, b) in 0-1}`` of a segmentation node, in segment order."""
    segmentation = node.GetSegmentation()
    return {
        segmentation.GetNthSegment(n).GetName(): tuple(segmentation.GetNthSegment(n).GetColor())
        for n in range(segmentation.GetNumberOfSegments())
    }


def labels_from_segmentation_node(scene, node, reference_volume_node) -> Volume:
    """The segmentation as a label map with this module's codes (segments matched by name), on the
    reference volume's grid. Segments with other names raise (rename them or remove them first)."""
    from slicer import vtkSlicerSegmentationsModuleLogic

    segmentation = node.GetSegmentation()
    segment_ids = vtk.vtkStringArray()
    for n in range(segmentation.GetNumberOfSegments()):
        name = segmentation.GetNthSegment(n).GetName()
        if name not in label_codes.BY_NAME:
            raise DBSInputError(
                f"segment '{name}' of '{node.GetName()}' is not one of {', '.join(label_codes.BY_NAME)}"
            )
        segment_ids.InsertNextValue(segmentation.GetNthSegmentID(n))
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{node.GetName()} export")
    try:
        if not vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            node, segment_ids, label_node, reference_volume_node, 0, color_table_node(scene)
        ):
            raise DBSInputError(f"segmentation '{node.GetName()}' could not be exported to a label map")
        return volume_from_volume_node(label_node)
    finally:
        remove_node(scene, label_node)


def show_closed_surfaces(node) -> None:
    """Make the closed-surface representation (smoothed, as in the Segment Editor) and show it in 3D."""
    if not node.CreateClosedSurfaceRepresentation():
        raise DBSInputError(f"no 3D surfaces could be made for '{node.GetName()}'")
    display = node.GetDisplayNode()
    if display is not None:
        display.SetVisibility3D(True)
        display.SetPreferredDisplayRepresentationName3D("Closed surface")


def export_models(scene, node, folder_item) -> list:
    """One model node per segment (named and coloured as the segment), placed in ``folder_item``."""
    from slicer import vtkSlicerSegmentationsModuleLogic

    before = {model.GetID() for model in _nodes(scene, "vtkMRMLModelNode")}
    if not vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToModels(node, folder_item):
        raise DBSInputError(f"the segments of '{node.GetName()}' could not be exported as models")
    models = [model for model in _nodes(scene, "vtkMRMLModelNode") if model.GetID() not in before]
    for model in models:
        place_in_folder(scene, model, folder_item)
    return models


def _nodes(scene, class_name: str) -> list:
    return [scene.GetNthNodeByClass(n, class_name) for n in range(scene.GetNumberOfNodesByClass(class_name))]
