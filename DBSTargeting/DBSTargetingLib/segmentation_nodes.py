"""Label map <-> segmentation node, closed surfaces and 3D models (DESIGN §2: MRML glue only).

Segment names and colours come from ``DBSSegmentationLogic.segmentation.labels`` (the one place that knows the
codes). Every segment also carries a standard terminology entry: the module's terminology file
``Resources/Terminology/SegmentationCategoryTypeModifier-DBSTargeting.term.json`` (category SCT
"Anatomical Structure", type by FMA code, laterality SCT Left/Right as modifier), loaded through Slicer's
terminology logic when there is one so that the Segment Editor and DICOM export know it. The entry is
stored through ``slicer_compat`` (``SetTerminology`` from Slicer 5.10, the terminology tag before).

Like ``mrml_glue`` this imports only ``vtk``, MRML classes (through the ``slicer`` package's wrapped
C++ classes) and numpy: no Qt, no ``slicer.util``, so it runs inside Slicer and under ``slicer-core``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import vtk

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import Volume
from DBSSegmentationLogic.segmentation import labels as label_codes

from .mrml_glue import remove_node, volume_from_volume_node, volume_node_from_volume
from .slicer_compat import set_segment_terminology
from .subject_hierarchy import place_in_folder

#: Name of the colour table node holding our label codes, names and colours.
COLOR_TABLE_NAME = "DBS structures"
#: The module's terminology file (DICOM segment context JSON, as Slicer's own .term.json files).
TERMINOLOGY_FILE = (Path(__file__).resolve().parents[1] / "Resources" / "Terminology"
                    / "SegmentationCategoryTypeModifier-DBSTargeting.term.json")


@lru_cache(maxsize=None)
def _terminology_document(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def terminology_context_name(path=TERMINOLOGY_FILE) -> str:
    return _terminology_document(str(path))["SegmentationCategoryTypeContextName"]


_NUCLEUS_LABELS = {"STN": "subthalamic nucleus", "RN": "red nucleus", "SN": "substantia nigra",
                   "GPi": "internal globus pallidus", "GPe": "external globus pallidus"}


def terminology_label(structure) -> str:
    """The ``3dSlicerLabel`` of a structure in the terminology file, e.g. "left subthalamic nucleus"."""
    return f"{structure.side} {_NUCLEUS_LABELS[structure.nucleus]}"


def load_terminology(terminology_logic, path=TERMINOLOGY_FILE) -> str:
    """Load the module's terminology file into Slicer's terminology logic (once); returns its context name."""
    name = terminology_context_name(path)
    loaded = vtk.vtkStringArray()
    terminology_logic.GetLoadedTerminologyNames(loaded)
    if name not in {loaded.GetValue(n) for n in range(loaded.GetNumberOfValues())}:
        if terminology_logic.LoadTerminologyFromFile(str(path)) != name:
            raise DBSInputError(f"the terminology file {Path(path).name} could not be loaded")
    return name


def terminology_entry(structure, terminology_logic=None) -> str:
    """Serialized terminology entry of a structure (category, type, laterality; no anatomic context).

    With Slicer's terminology logic the entry is looked up in the loaded file and serialized by the logic;
    without one (bare scenes) it is written from the file directly, in the same format."""
    label = terminology_label(structure)
    context = terminology_context_name()
    if terminology_logic is not None:
        from slicer import vtkSlicerTerminologyEntry

        load_terminology(terminology_logic)
        entry = vtkSlicerTerminologyEntry()
        if not terminology_logic.FindTypeInTerminologyBy3dSlicerLabel(context, label, entry):
            raise DBSInputError(f"'{label}' is not in the terminology '{context}'")
        return terminology_logic.SerializeTerminologyEntry(entry)
    category = _terminology_document(str(TERMINOLOGY_FILE))["SegmentationCodes"]["Category"][0]
    for entry_type in category["Type"]:
        for modifier in entry_type.get("Modifier", []):
            if modifier["3dSlicerLabel"] == label:
                code = "^".join
                return "~".join([
                    context,
                    code([category["CodingSchemeDesignator"], category["CodeValue"], category["CodeMeaning"]]),
                    code([entry_type["CodingSchemeDesignator"], entry_type["CodeValue"], entry_type["CodeMeaning"]]),
                    code([modifier["CodingSchemeDesignator"], modifier["CodeValue"], modifier["CodeMeaning"]]),
                    "", "^^", "^^",
                ])
    raise DBSInputError(f"the terminology file has no entry for {structure.name}")


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


def segmentation_node_from_labels(scene, labels: Volume, name: str, reference_volume_node=None, node=None,
                                  terminology_logic=None):
    """A segmentation node with one segment per structure present in ``labels``: ``node`` when given
    (its segments are replaced: an output segmentation reused on re-run), else a new node ``name``.

    Segment names are the structure names (``STN_left`` …), colours those of the label table, each
    with its terminology entry; the segmentation's geometry is the label map's own grid.
    ``reference_volume_node`` (the MRI) is set as the segmentation's reference geometry node when
    given. Unknown codes raise, before anything changes.
    """
    from slicer import vtkSlicerSegmentationsModuleLogic

    codes = {int(c) for c in np.unique(labels.array)} - {0}
    unknown = sorted(codes - set(label_codes.BY_CODE))
    if unknown:
        raise DBSInputError(f"label map holds codes {unknown} that are not structures of this module")
    label_node = volume_node_from_volume(scene, labels.with_array(labels.array.astype(np.uint8)), f"{name} labels", label_map=True)
    try:
        label_node.GetDisplayNode().SetAndObserveColorNodeID(color_table_node(scene).GetID())
        created = node is None
        if created:
            node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        else:
            node.GetSegmentation().RemoveAllSegments()
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        if not vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label_node, node, ""):
            if created:
                remove_node(scene, node)
            raise DBSInputError(f"the label map could not be imported into segmentation '{node.GetName()}'")
    finally:
        remove_node(scene, label_node)
    segmentation = node.GetSegmentation()
    for segment_id in list(segmentation.GetSegmentIDs()):
        segment = segmentation.GetSegment(segment_id)
        structure = label_codes.BY_CODE[segment.GetLabelValue()]
        segment.SetName(structure.name)
        segment.SetColor(*(c / 255.0 for c in structure.colour_rgb))
        set_segment_terminology(segment, terminology_entry(structure, terminology_logic))
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
    colour_table = color_table_node(scene)
    tables_before = {table.GetID() for table in _nodes(scene, "vtkMRMLColorTableNode")}
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{node.GetName()} export")
    try:
        if not vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            node, segment_ids, label_node, reference_volume_node, 0, colour_table
        ):
            raise DBSInputError(f"segmentation '{node.GetName()}' could not be exported to a label map")
        return volume_from_volume_node(label_node)
    finally:
        remove_node(scene, label_node)
        # The export makes a colour table ("<segmentation>_ColorTable") for the temporary label map: it goes too,
        # or every plan would leave one behind.
        for table in _nodes(scene, "vtkMRMLColorTableNode"):
            if table.GetID() not in tables_before:
                remove_node(scene, table)


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
