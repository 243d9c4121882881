"""Results in the scene against Slicer's real MRML classes: label map <-> segmentation (names, colours,
terminology, exact geometry), closed surfaces and models, plan markups, lines and table, the case
folder, and a saved .mrb that reloads with every node and coordinate (DESIGN §8, issue #6)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
from DBSTargetingLib import (  # noqa: E402
    plan_nodes,
    scene_files,
    segmentation_nodes,
    slicer_compat,
    subject_hierarchy,
)
from DBSTargetingLib.mrml_glue import markups_points_from_node, volume_node_from_volume  # noqa: E402

from DBSSegmentationLogic.io.exceptions import DBSInputError  # noqa: E402
from DBSSegmentationLogic.io.volumes import Volume  # noqa: E402
from DBSSegmentationLogic.segmentation import labels as label_codes  # noqa: E402

TOLERANCE_MM = 0.01


def oblique_grid(shape_kji=(12, 14, 16), spacing_mm=(0.8, 0.9, 1.1)) -> np.ndarray:
    angle = np.radians(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = rotation @ np.diag(spacing_mm)
    ijk_to_ras[:3, 3] = [-7.5, -20.25, -8.0]
    return ijk_to_ras


def synthetic_labels() -> Volume:
    """Boxes of STN, RN and SN on both sides (left at small i, which the grid maps to small R)."""
    array = np.zeros((12, 14, 16), np.uint8)
    boxes = {"STN": (slice(2, 5), slice(2, 5), slice(1, 4)), "RN": (slice(2, 5), slice(7, 10), slice(1, 4)),
             "SN": (slice(7, 10), slice(2, 6), slice(1, 5))}
    for nucleus, (ks, js, i_left) in boxes.items():
        array[ks, js, i_left] = label_codes.BY_NAME[f"{nucleus}_left"].code
        i_right = slice(16 - i_left.stop, 16 - i_left.start)
        array[ks, js, i_right] = label_codes.BY_NAME[f"{nucleus}_right"].code
    return Volume(array, oblique_grid())


def synthetic_plan() -> dict:
    """A plan dict shaped as ``CasePlan.to_dict()`` (plan.json), with distinct numbers everywhere."""
    def trajectory(side, sign):
        return {
            "name": f"{side[0].upper()} STN", "side": side, "target_kind": "stn",
            "target_ras": [sign * 11.123, -3.456, -4.789], "target_acpc": [sign * 11.5, -2.25, -4.0],
            "entry_ras": [sign * 35.25, 40.125, 60.0625], "entry_acpc": [sign * 30.5, 41.0, 58.75],
            "entry_source": "user", "length_mm": 80.1, "ring_deg": 61.234 + sign, "arc_deg": 90.0 + sign * 12.345,
            "set_ring_deg": 61.0 + sign, "set_arc_deg": 90.0 + sign * 12.5,
            "target_leksell": [100 - sign * 11.5, 97.75, 104.0], "entry_leksell": [100 - sign * 30.5, 141.0, 41.25],
            "set_target_leksell": [100 - sign * 11.5, 98.0, 104.0], "indirect_target_ras": [sign * 12.0, -2.5, -4.0],
            "direct_to_indirect_mm": 1.5, "structure_distances_mm": {}, "crossed_structures": [], "warnings": [],
        }

    indirect = {kind: {side: {"acpc": [sign * x, y, z], "ras": [sign * x + 0.1, y + 0.2, z + 0.3]}
                       for side, sign in (("left", -1), ("right", 1))}
                for kind, (x, y, z) in {"stn": (12, -2.5, -4), "gpi": (20, 2.5, -4), "vim": (13, -6, 0)}.items()}
    return {
        "target_kind": "stn", "mounting": "lateral-right", "frame": "virtual",
        "acpc": {"ac_ras": [0.25, 12.5, 0.125], "pc_ras": [0.25, -12.5, 0.125], "midline_ras": [0.25, 0.0, 40.0],
                 "mcp_ras": [0.25, 0.0, 0.125], "acpc_length_mm": 25.0},
        "direct": {}, "indirect": indirect,
        "trajectories": [trajectory("left", -1), trajectory("right", 1)],
        "failures": {},
    }


def segment_voxel_centroid_ras(labels: Volume, code: int) -> np.ndarray:
    voxels = np.argwhere(labels.array == code)[:, ::-1]
    return labels.ijk_to_ras_points(voxels).mean(axis=0)


# --- segmentation --------------------------------------------------------------------------------------


def test_label_map_becomes_named_coloured_segments(mrml):
    labels = synthetic_labels()

    node = segmentation_nodes.segmentation_node_from_labels(mrml.scene, labels, "Structures")

    expected = {s.name: tuple(c / 255.0 for c in s.colour_rgb) for s in label_codes.STRUCTURES if s.nucleus in ("STN", "RN", "SN")}
    colours = segmentation_nodes.segment_names_and_colours(node)
    assert sorted(colours) == sorted(expected)
    for name, rgb in expected.items():
        np.testing.assert_allclose(colours[name], rgb, atol=1e-6)
    # the temporary label map used for the import is gone, display nodes and all
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeDisplayNode") == 0
    assert node.GetDisplayNode() is not None


#: FMA identifiers checked against the structures' Wikipedia infoboxes and UBERON's cross-references (EBI OLS).
FMA_CODES = {"STN": "62035", "RN": "62407", "SN": "67947", "GPi": "61840", "GPe": "61839"}


def test_every_structure_carries_its_terminology_from_the_module_file(mrml):
    """Issue #12 item 4: the .term.json file, loaded by Slicer's own terminology logic, codes each structure
    (FMA type, SCT laterality); the entry written without the logic (bare scenes) is the logic's own."""
    terminology_logic = slicer.vtkSlicerTerminologiesModuleLogic()
    with_logic = segmentation_nodes.segmentation_node_from_labels(mrml.scene, synthetic_labels(), "With logic",
                                                                  terminology_logic=terminology_logic)
    without_logic = segmentation_nodes.segmentation_node_from_labels(mrml.scene, synthetic_labels(), "Without logic")
    names = vtk.vtkStringArray()
    terminology_logic.GetLoadedTerminologyNames(names)
    assert segmentation_nodes.terminology_context_name() in [names.GetValue(n) for n in range(names.GetNumberOfValues())]

    for node in (with_logic, without_logic):
        segmentation = node.GetSegmentation()
        for n in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(n)
            structure = label_codes.BY_NAME[segment.GetName()]
            entry = slicer.vtkSlicerTerminologyEntry()
            assert terminology_logic.DeserializeTerminologyEntry(slicer_compat.segment_terminology(segment), entry)
            assert entry.GetCategoryObject().GetCodeValue() == "123037004"  # SCT Anatomical Structure
            assert (entry.GetTypeObject().GetCodingSchemeDesignator(), entry.GetTypeObject().GetCodeValue()) == \
                ("FMA", FMA_CODES[structure.nucleus]), segment.GetName()
            assert entry.GetTypeModifierObject().GetCodeValue() == {"left": "7771000", "right": "24028007"}[structure.side]
    for n in range(with_logic.GetSegmentation().GetNumberOfSegments()):
        assert (slicer_compat.segment_terminology(with_logic.GetSegmentation().GetNthSegment(n))
                == slicer_compat.segment_terminology(without_logic.GetSegmentation().GetNthSegment(n)))


def test_terminology_file_matches_the_label_table():
    document = json.loads(segmentation_nodes.TERMINOLOGY_FILE.read_text())
    types = document["SegmentationCodes"]["Category"][0]["Type"]
    colours = {modifier["3dSlicerLabel"]: tuple(modifier["recommendedDisplayRGBValue"])
               for entry_type in types for modifier in entry_type["Modifier"]}
    assert len(colours) == len(label_codes.STRUCTURES) == 10
    for structure in label_codes.STRUCTURES:
        assert colours[segmentation_nodes.terminology_label(structure)] == tuple(structure.colour_rgb), structure.name


def test_segmentation_back_to_label_map_is_voxel_exact_on_the_reference_grid(mrml):
    labels = synthetic_labels()
    mri = volume_node_from_volume(mrml.scene, labels.with_array(np.zeros(labels.array.shape, np.float32)), "MRI")
    node = segmentation_nodes.segmentation_node_from_labels(mrml.scene, labels, "Structures", reference_volume_node=mri)

    back = segmentation_nodes.labels_from_segmentation_node(mrml.scene, node, mri)

    assert back.array.shape == labels.array.shape
    np.testing.assert_array_equal(back.array, labels.array)
    np.testing.assert_allclose(back.ijk_to_ras, labels.ijk_to_ras, atol=1e-6)
    # sides follow the anatomy: every left structure lies at smaller R than its right twin
    for nucleus in ("STN", "RN", "SN"):
        left = segment_voxel_centroid_ras(back, label_codes.BY_NAME[f"{nucleus}_left"].code)
        right = segment_voxel_centroid_ras(back, label_codes.BY_NAME[f"{nucleus}_right"].code)
        assert left[0] < right[0]
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0


def test_unknown_codes_and_foreign_segments_are_refused(mrml):
    labels = synthetic_labels()
    with pytest.raises(DBSInputError, match=r"codes \[42\]"):
        segmentation_nodes.segmentation_node_from_labels(mrml.scene, labels.with_array(np.where(labels.array > 0, 42, 0).astype(np.uint8)), "bad")

    node = segmentation_nodes.segmentation_node_from_labels(mrml.scene, labels, "Structures")
    node.GetSegmentation().AddEmptySegment("tumour", "tumour")
    mri = volume_node_from_volume(mrml.scene, labels, "ref")
    with pytest.raises(DBSInputError, match="segment 'tumour'"):
        segmentation_nodes.labels_from_segmentation_node(mrml.scene, node, mri)


def test_closed_surfaces_and_models_sit_on_their_voxels(mrml):
    labels = synthetic_labels()
    folder = subject_hierarchy.case_folder(mrml.scene, "Case 7")
    node = segmentation_nodes.segmentation_node_from_labels(mrml.scene, labels, "Structures")

    segmentation_nodes.show_closed_surfaces(node)
    models = segmentation_nodes.export_models(mrml.scene, node, folder)

    assert node.GetDisplayNode().GetPreferredDisplayRepresentationName3D() == "Closed surface"
    assert sorted(model.GetName() for model in models) == sorted(segmentation_nodes.segment_names_and_colours(node))
    for model in models:
        structure = label_codes.BY_NAME[model.GetName()]
        np.testing.assert_allclose(model.GetDisplayNode().GetColor(), [c / 255 for c in structure.colour_rgb], atol=1e-6)
        polydata = model.GetPolyData()
        assert polydata.GetNumberOfPoints() > 0
        surface = np.array([polydata.GetPoint(n) for n in range(polydata.GetNumberOfPoints())])
        # a symmetric box: the surface's centre is the voxels' centre (smoothing keeps it within 0.5 mm)
        np.testing.assert_allclose(surface.mean(axis=0), segment_voxel_centroid_ras(labels, structure.code), atol=0.5)
        assert subject_hierarchy.folder_of(mrml.scene, model) == "Case 7"


# --- plan nodes ----------------------------------------------------------------------------------------


def test_plan_points_lines_and_table(mrml):
    plan = synthetic_plan()
    folder = subject_hierarchy.case_folder(mrml.scene, "Case 7")

    nodes = plan_nodes.plan_to_nodes(mrml.scene, plan, folder)

    targets = markups_points_from_node(nodes["targets"])
    assert list(targets) == ["L STN", "R STN"]
    for trajectory in plan["trajectories"]:
        np.testing.assert_allclose(targets[trajectory["name"]], trajectory["target_ras"], atol=TOLERANCE_MM, rtol=0)
    indirect = markups_points_from_node(nodes["indirect"])
    assert set(indirect) == {f"{s} {n} indirect" for s in "LR" for n in ("STN", "GPi", "Vim")}
    np.testing.assert_allclose(indirect["R GPi indirect"], plan["indirect"]["gpi"]["right"]["ras"], atol=TOLERANCE_MM)
    np.testing.assert_allclose(markups_points_from_node(nodes["landmarks"])["AC"], plan["acpc"]["ac_ras"], atol=TOLERANCE_MM)

    for line, trajectory in zip(nodes["trajectories"], plan["trajectories"]):
        assert line.IsA("vtkMRMLMarkupsLineNode") and line.GetName() == f"{trajectory['name']} trajectory"
        points = markups_points_from_node(line)
        np.testing.assert_allclose(points["entry"], trajectory["entry_ras"], atol=TOLERANCE_MM, rtol=0)
        np.testing.assert_allclose(points["target"], trajectory["target_ras"], atol=TOLERANCE_MM, rtol=0)
        assert line.GetLineLengthWorld() == pytest.approx(np.linalg.norm(np.subtract(trajectory["entry_ras"], trajectory["target_ras"])), abs=TOLERANCE_MM)

    rows = {row["Point"]: row for row in plan_nodes.table_rows(nodes["table"])}
    left = plan["trajectories"][0]
    row = rows["L STN target"]
    np.testing.assert_allclose([row["R (mm)"], row["A (mm)"], row["S (mm)"]], left["target_ras"], atol=TOLERANCE_MM)
    np.testing.assert_allclose([row["AC-PC x (mm)"], row["AC-PC y (mm)"], row["AC-PC z (mm)"]], left["target_acpc"], atol=TOLERANCE_MM)
    np.testing.assert_allclose([row["Leksell X (mm)"], row["Leksell Y (mm)"], row["Leksell Z (mm)"]], left["target_leksell"], atol=TOLERANCE_MM)
    assert row["Ring (deg)"] == pytest.approx(left["ring_deg"], abs=0.01)
    assert row["Arc (deg)"] == pytest.approx(left["arc_deg"], abs=0.01)
    assert row["Frame setting"] == "X 111.5 Y 98.0 Z 104.0, ring 60.0°, arc 77.5° (lateral-right)"
    assert math.isnan(rows["L Vim indirect"]["Ring (deg)"])
    assert len(rows) == 2 * 2 + 6 + 4
    assert json.loads(nodes["table"].GetAttribute(plan_nodes.PLAN_ATTRIBUTE)) == plan

    in_folder = subject_hierarchy.nodes_in_folder(mrml.scene, folder)
    for node in [nodes["targets"], nodes["indirect"], nodes["landmarks"], nodes["table"], *nodes["trajectories"]]:
        assert any(node is other for other in in_folder), node.GetName()


def test_failed_side_is_described_not_drawn(mrml):
    plan = synthetic_plan()
    plan["trajectories"] = plan["trajectories"][:1]
    plan["failures"] = {"right": "the tangent misses the right STN"}

    nodes = plan_nodes.plan_to_nodes(mrml.scene, plan, subject_hierarchy.case_folder(mrml.scene, "Case"))

    assert list(markups_points_from_node(nodes["targets"])) == ["L STN"]
    assert [line.GetName() for line in nodes["trajectories"]] == ["L STN trajectory"]
    assert "right side not planned: the tangent misses the right STN" in nodes["targets"].GetDescription()


# --- scene bundle --------------------------------------------------------------------------------------


def test_saved_bundle_reloads_every_node_and_coordinate(mrml, make_mrml, tmp_path):
    labels = synthetic_labels()
    plan = synthetic_plan()
    folder = subject_hierarchy.case_folder(mrml.scene, "Case 7")
    mri = volume_node_from_volume(mrml.scene, labels.with_array(labels.array.astype(np.float32) * 10), "MRI")
    subject_hierarchy.place_in_folder(mrml.scene, mri, folder)
    segmentation = segmentation_nodes.segmentation_node_from_labels(mrml.scene, labels, "Structures", mri)
    subject_hierarchy.place_in_folder(mrml.scene, segmentation, folder)
    segmentation_nodes.show_closed_surfaces(segmentation)
    segmentation_nodes.export_models(mrml.scene, segmentation, folder)
    plan_nodes.plan_to_nodes(mrml.scene, plan, folder)

    path = scene_files.save_mrb(mrml.scene, tmp_path / "case7.mrb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case7.mrb"]  # no temporary left beside it

    other = make_mrml()
    scene_files.load_mrb(other.scene, path)
    scene = other.scene

    def node(name):
        found = scene.GetFirstNodeByName(name)
        assert found is not None, f"{name} missing after reload"
        assert subject_hierarchy.folder_of(scene, found) == "Case 7", name
        return found

    back = segmentation_nodes.labels_from_segmentation_node(scene, node("Structures"), node("MRI"))
    np.testing.assert_array_equal(back.array, labels.array)
    colours = segmentation_nodes.segment_names_and_colours(node("Structures"))
    for name, rgb in colours.items():
        np.testing.assert_allclose(rgb, [c / 255 for c in label_codes.BY_NAME[name].colour_rgb], atol=1e-6)
    assert node("STN_left").GetPolyData().GetNumberOfPoints() > 0  # models come back with their surfaces

    targets = markups_points_from_node(node(plan_nodes.TARGETS_NODE))
    rows = {row["Point"]: row for row in plan_nodes.table_rows(node(plan_nodes.TABLE_NODE))}
    for trajectory in plan["trajectories"]:
        np.testing.assert_allclose(targets[trajectory["name"]], trajectory["target_ras"], atol=TOLERANCE_MM, rtol=0)
        line = markups_points_from_node(node(trajectory["name"] + plan_nodes.TRAJECTORY_SUFFIX))
        np.testing.assert_allclose(line["entry"], trajectory["entry_ras"], atol=TOLERANCE_MM, rtol=0)
        np.testing.assert_allclose(line["target"], trajectory["target_ras"], atol=TOLERANCE_MM, rtol=0)
        for point in ("target", "entry"):
            row = rows[f"{trajectory['name']} {point}"]
            np.testing.assert_allclose([row["R (mm)"], row["A (mm)"], row["S (mm)"]], trajectory[f"{point}_ras"], atol=TOLERANCE_MM)
            np.testing.assert_allclose(
                [row["Leksell X (mm)"], row["Leksell Y (mm)"], row["Leksell Z (mm)"]], trajectory[f"{point}_leksell"], atol=TOLERANCE_MM
            )
    indirect = markups_points_from_node(node(plan_nodes.INDIRECT_NODE))
    np.testing.assert_allclose(indirect["L STN indirect"], plan["indirect"]["stn"]["left"]["ras"], atol=TOLERANCE_MM)
    assert json.loads(node(plan_nodes.TABLE_NODE).GetAttribute(plan_nodes.PLAN_ATTRIBUTE)) == plan


def test_bundle_name_must_end_in_mrb(mrml, tmp_path):
    with pytest.raises(DBSInputError, match=r"\.mrb"):
        scene_files.save_mrb(mrml.scene, tmp_path / "scene.zip")
    with pytest.raises(DBSInputError, match="no scene bundle"):
        scene_files.load_mrb(mrml.scene, tmp_path / "missing.mrb")
