"""Post-operative results in the scene against Slicer's real MRML classes (issue #6): lead models on
the lead axis with the lead model's radius, contacts and tips at their coordinates, the error table
holding every number of postop.json, the CT-to-MRI fusion transform with the CT under it, all in the
case folder; a new evaluation replaces the old one; a saved .mrb keeps everything."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core package: run Testing/mrml/run_mrml_tests.sh")
import vtk  # noqa: E402
from DBSTargetingLib import (  # noqa: E402
    case_pipeline,
    plan_nodes,
    postop_nodes,
    scene_files,
    subject_hierarchy,
)
from DBSTargetingLib.mrml_glue import (  # noqa: E402
    markups_points_from_node,
    matrix_from_vtk,
    volume_from_volume_node,
    volume_node_from_volume,
    vtk_matrix_from_array,
)
from DBSTargetingLib.postop_job import POSTOP_FORMAT  # noqa: E402

from DBSSegmentationLogic.io.exceptions import DBSInputError  # noqa: E402
from DBSSegmentationLogic.io.volumes import Volume  # noqa: E402
from DBSSegmentationLogic.postop.leads import LEAD_MODELS  # noqa: E402

TOLERANCE_MM = 0.01


def _unit(vector) -> list:
    vector = np.asarray(vector, float)
    return (vector / np.linalg.norm(vector)).tolist()


def _lead(side: str, model: str, tip, towards_entry, source: str) -> dict:
    direction = np.array(_unit(towards_entry))
    tip = np.asarray(tip, float)
    centres = tip + np.outer(LEAD_MODELS[model].contact_centres_from_tip_mm(), direction)
    return {"side": side, "model": model, "tip_ras": tip.tolist(), "direction_ras": direction.tolist(),
            "contact_centres_ras": centres.tolist(), "axis_point_ras": (tip + 12.5 * direction).tolist(),
            "source": source}


def synthetic_fusion_matrix() -> list:
    """CT RAS -> MRI RAS: 3.5° about S and 2° about R, then a shift, as a head moved between scans."""
    a, b = math.radians(3.5), math.radians(-2.0)
    about_s = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    about_r = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    matrix = np.eye(4)
    matrix[:3, :3] = about_s @ about_r
    matrix[:3, 3] = [1.75, -12.5, 6.125]
    return matrix.tolist()


def synthetic_postop() -> dict:
    """A postop.json as ``dbs-plan postop`` writes it: a left 3389 found automatically and a right
    Vercise placed by hand, errors of about a millimetre, the right side without frame errors."""
    return {
        "format": POSTOP_FORMAT,
        "plan": "/cases/7/plan.json",
        "ct": "/cases/7/postop_ct.nii.gz",
        "fusion": {"method": "mattes-mi-rigid", "ct_to_mri_ras": synthetic_fusion_matrix(), "metric": -0.5123,
                   "overlap": 0.973, "seconds": 41.25},
        "leads": [
            _lead("left", "medtronic-3389", [-12.04, -3.21, -5.36], [-0.28, 0.52, 0.81], "automatic"),
            _lead("right", "boston-vercise-8", [10.62, -2.89, -3.97], [0.31, 0.49, 0.82], "manual"),
        ],
        "errors": {
            "left": {"euclidean_mm": 1.234, "depth_mm": 0.456, "radial_mm": 1.147, "radial_at_target_plane_mm": 1.089,
                     "angular_deg": 2.35, "ras_mm": [-0.917, -0.754, -0.372], "acpc_mm": [-0.902, -0.781, -0.366],
                     "frame_mm": [0.902, -0.781, 0.366]},
            "right": {"euclidean_mm": 0.876, "depth_mm": -0.312, "radial_mm": 0.818, "radial_at_target_plane_mm": None,
                      "angular_deg": 1.05, "ras_mm": [-0.503, 0.566, 0.481], "acpc_mm": [-0.497, 0.559, 0.492],
                      "frame_mm": None},
        },
        "warnings": ["right lead placed by hand: no long thin metal found on that side"],
    }


def _points(polydata) -> np.ndarray:
    return np.array([polydata.GetPoint(n) for n in range(polydata.GetNumberOfPoints())])


def assert_tube_on_lead(model_node, lead: dict) -> None:
    """Every point of the tube lies at the lead radius from the axis, between the tip and
    LEAD_SHOWN_LENGTH_MM above it, and both ends are reached."""
    points = _points(model_node.GetPolyData())
    tip, direction = np.array(lead["tip_ras"]), np.array(lead["direction_ras"])
    along = (points - tip) @ direction
    radial = np.linalg.norm(points - tip - np.outer(along, direction), axis=1)
    assert along.min() == pytest.approx(0.0, abs=TOLERANCE_MM)
    assert along.max() == pytest.approx(postop_nodes.LEAD_SHOWN_LENGTH_MM, abs=TOLERANCE_MM)
    np.testing.assert_allclose(radial, LEAD_MODELS[lead["model"]].diameter_mm / 2, atol=TOLERANCE_MM, rtol=0)
    # the two rims are centred on the tip and on tip + L·direction
    for end, centre in ((along < 1.0, tip), (along > postop_nodes.LEAD_SHOWN_LENGTH_MM - 1.0,
                                               tip + postop_nodes.LEAD_SHOWN_LENGTH_MM * direction)):
        np.testing.assert_allclose(points[end].mean(axis=0), centre, atol=TOLERANCE_MM, rtol=0)


def assert_postop_in_scene(scene, postop: dict, case: str) -> None:
    """Every node of ``postop`` found by name, once, in the folder ``case`` of ``scene``, with its numbers."""
    in_case = subject_hierarchy.nodes_in_folder(scene, subject_hierarchy.find_case_folder(scene, case))

    def node(name):
        found = [n for n in in_case if n.GetName() == name]
        assert len(found) == 1, f"{len(found)} nodes named {name} in {case}"
        return found[0]

    tips = markups_points_from_node(node(postop_nodes.TIPS_NODE))
    for lead in postop["leads"]:
        prefix = "L" if lead["side"] == "left" else "R"
        model = node(f"{prefix} lead")
        assert model.IsA("vtkMRMLModelNode") and model.GetAttribute(postop_nodes.SIDE_ATTRIBUTE) == lead["side"]
        assert_tube_on_lead(model, lead)
        contacts = markups_points_from_node(node(f"{prefix} contacts"))
        assert list(contacts) == [f"{prefix} C{n}" for n in range(len(lead["contact_centres_ras"]))]
        np.testing.assert_allclose(list(contacts.values()), lead["contact_centres_ras"], atol=TOLERANCE_MM, rtol=0)
        np.testing.assert_allclose(tips[f"{prefix} tip"], lead["tip_ras"], atol=TOLERANCE_MM, rtol=0)

    rows = {row["Side"]: row for row in plan_nodes.table_rows(node(postop_nodes.TABLE_NODE))}
    assert list(rows) == [side for side in ("left", "right") if side in postop["errors"]]
    for side, errors in postop["errors"].items():
        row = rows[side]
        for column, key in (("Euclidean (mm)", "euclidean_mm"), ("Depth (mm)", "depth_mm"), ("Radial (mm)", "radial_mm"),
                            ("Radial at target plane (mm)", "radial_at_target_plane_mm"), ("Angular (deg)", "angular_deg")):
            assert row[column] == pytest.approx(math.nan if errors[key] is None else errors[key], nan_ok=True), column
        for columns, key in ((("RAS R (mm)", "RAS A (mm)", "RAS S (mm)"), "ras_mm"),
                             (("AC-PC x (mm)", "AC-PC y (mm)", "AC-PC z (mm)"), "acpc_mm"),
                             (("Frame X (mm)", "Frame Y (mm)", "Frame Z (mm)"), "frame_mm")):
            expected = [math.nan] * 3 if errors[key] is None else errors[key]
            np.testing.assert_allclose([row[c] for c in columns], expected, atol=1e-9, rtol=0)
    for lead in postop["leads"]:
        row = rows[lead["side"]]
        assert (row["Lead model"], row["Source"]) == (lead["model"], lead["source"])
        np.testing.assert_allclose([row["Tip R (mm)"], row["Tip A (mm)"], row["Tip S (mm)"]], lead["tip_ras"], atol=1e-9)
    assert json.loads(node(postop_nodes.TABLE_NODE).GetAttribute(postop_nodes.POSTOP_ATTRIBUTE)) == postop

    transform = node(postop_nodes.TRANSFORM_NODE)
    to_parent = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToParent(to_parent)
    np.testing.assert_allclose(matrix_from_vtk(to_parent), postop["fusion"]["ct_to_mri_ras"], atol=1e-9, rtol=0)


#: IJK to RAS of the small stand-in CT, as loaded (before any fusion).
CT_IJK_TO_RAS = np.array([[0.5, 0, 0, -4.0], [0, 0.5, 0, -5.0], [0, 0, 1.0, -3.0], [0, 0, 0, 1]])


def _ct_node(scene, name="Post-op CT"):
    return volume_node_from_volume(scene, Volume(np.full((6, 16, 16), -1000, np.int16), CT_IJK_TO_RAS), name)


def test_leads_contacts_tips_table_and_transform_in_the_case_folder(mrml):
    postop = synthetic_postop()
    folder = subject_hierarchy.case_folder(mrml.scene, "Case 7")

    nodes = postop_nodes.postop_to_nodes(mrml.scene, postop, folder)

    assert_postop_in_scene(mrml.scene, postop, "Case 7")
    assert [n.GetName() for n in nodes["leads"]] == ["L lead", "R lead"]
    assert [n.GetName() for n in nodes["contacts"]] == ["L contacts", "R contacts"]
    assert nodes["contacts"][1].GetNumberOfControlPoints() == 8  # the Vercise has eight contacts
    # sides follow the anatomy: the left lead lies at smaller R than the right one
    tips = markups_points_from_node(nodes["tips"])
    assert tips["L tip"][0] < 0 < tips["R tip"][0]
    assert nodes["leads"][0].GetDisplayNode().GetVisibility2D()
    assert "placed by hand" in nodes["table"].GetDescription()
    in_folder = subject_hierarchy.nodes_in_folder(mrml.scene, folder)
    made = [*nodes["leads"], *nodes["contacts"], nodes["tips"], nodes["table"], nodes["transform"]]
    for node in made:
        assert any(node is other for other in in_folder), node.GetName()
        assert postop_nodes.is_postop_node(node), node.GetName()


def test_lead_list_order_does_not_swap_sides(mrml):
    postop = synthetic_postop()
    postop["leads"].reverse()  # right first in the file

    nodes = postop_nodes.postop_to_nodes(mrml.scene, postop, subject_hierarchy.case_folder(mrml.scene, "Case"))

    assert [n.GetAttribute(postop_nodes.SIDE_ATTRIBUTE) for n in nodes["leads"]] == ["left", "right"]
    assert_postop_in_scene(mrml.scene, postop, "Case")


def test_ct_goes_under_the_fusion_transform_and_lands_in_mri_space(mrml):
    postop = synthetic_postop()
    ct = _ct_node(mrml.scene)
    matrix = np.array(postop["fusion"]["ct_to_mri_ras"])

    nodes = case_pipeline.postop_to_scene(mrml.scene, "Case 7", postop, ct)

    assert ct.GetParentTransformNode() is nodes["transform"]
    np.testing.assert_allclose(volume_from_volume_node(ct).ijk_to_ras, matrix @ CT_IJK_TO_RAS, atol=1e-9)
    # the CT handed to the next evaluation is the CT as loaded, not the already fused one
    np.testing.assert_allclose(case_pipeline.postop_ct_volume(ct).ijk_to_ras, CT_IJK_TO_RAS, atol=1e-9)


def test_ct_under_a_transform_of_the_user_is_left_there(mrml):
    user = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "manual registration")
    ct = _ct_node(mrml.scene)
    ct.SetAndObserveTransformNodeID(user.GetID())
    shift = np.eye(4)
    shift[:3, 3] = [0.0, 0.0, 10.0]
    user.SetMatrixTransformToParent(vtk_matrix_from_array(shift))

    case_pipeline.postop_to_scene(mrml.scene, "Case 7", synthetic_postop(), ct)

    assert ct.GetParentTransformNode() is user
    np.testing.assert_allclose(case_pipeline.postop_ct_volume(ct).origin_ras, [-4.0, -5.0, 7.0], atol=1e-9)


def test_a_new_evaluation_replaces_the_old_one_of_its_case_only(mrml):
    first, second = synthetic_postop(), synthetic_postop()
    for lead in second["leads"]:
        lead["tip_ras"] = (np.array(lead["tip_ras"]) + [0.5, -0.25, 1.0]).tolist()
        lead["contact_centres_ras"] = (np.array(lead["contact_centres_ras"]) + [0.5, -0.25, 1.0]).tolist()
    second["leads"] = second["leads"][:1]  # the right lead is not found this time
    second["errors"] = {"left": second["errors"]["left"]}
    second["fusion"]["ct_to_mri_ras"][0][3] = -3.5
    ct = _ct_node(mrml.scene)
    case_pipeline.postop_to_scene(mrml.scene, "Case 8", synthetic_postop())  # another case, kept as it is
    first_nodes = case_pipeline.postop_to_scene(mrml.scene, "Case 7", first, ct)
    count_before = mrml.scene.GetNumberOfNodes()

    nodes = case_pipeline.postop_to_scene(mrml.scene, "Case 7", second, ct)

    folder = subject_hierarchy.find_case_folder(mrml.scene, "Case 7")
    names = sorted(n.GetName() for n in subject_hierarchy.nodes_in_folder(mrml.scene, folder))
    assert names == sorted(["L lead", "L contacts", postop_nodes.TIPS_NODE, postop_nodes.TABLE_NODE, postop_nodes.TRANSFORM_NODE])
    assert_postop_in_scene(mrml.scene, second, "Case 7")
    assert nodes["transform"] is first_nodes["transform"]  # updated in place: the CT stays under it
    assert ct.GetParentTransformNode() is nodes["transform"]
    # the right lead's model, contacts and their display nodes are gone, nothing else piled up
    assert mrml.scene.GetNumberOfNodes() < count_before
    other = subject_hierarchy.nodes_in_folder(mrml.scene, subject_hierarchy.find_case_folder(mrml.scene, "Case 8"))
    assert sorted(n.GetName() for n in other) == sorted(["L lead", "R lead", "L contacts", "R contacts", postop_nodes.TIPS_NODE,
                                                         postop_nodes.TABLE_NODE, postop_nodes.TRANSFORM_NODE])
    count_after = mrml.scene.GetNumberOfNodes()
    case_pipeline.postop_to_scene(mrml.scene, "Case 7", second, ct)
    assert mrml.scene.GetNumberOfNodes() == count_after


def test_same_evaluation_twice_gives_the_same_scene(mrml):
    case_pipeline.postop_to_scene(mrml.scene, "Case 7", synthetic_postop())
    count = mrml.scene.GetNumberOfNodes()
    case_pipeline.postop_to_scene(mrml.scene, "Case 7", synthetic_postop())
    assert mrml.scene.GetNumberOfNodes() == count


def test_unusable_results_are_refused_before_the_scene_changes(mrml):
    folder = subject_hierarchy.case_folder(mrml.scene, "Case 7")
    postop_nodes.postop_to_nodes(mrml.scene, synthetic_postop(), folder)
    count = mrml.scene.GetNumberOfNodes()

    unknown_model = synthetic_postop()
    unknown_model["leads"][0]["model"] = "acme-9000"
    with pytest.raises(DBSInputError, match="unknown lead model 'acme-9000'"):
        postop_nodes.postop_to_nodes(mrml.scene, unknown_model, folder)
    wrong_format = dict(synthetic_postop(), format="dbs-postop/0")
    with pytest.raises(DBSInputError, match="dbs-postop/1"):
        postop_nodes.postop_to_nodes(mrml.scene, wrong_format, folder)
    wrong_side = synthetic_postop()
    wrong_side["leads"][0]["side"] = "L"
    with pytest.raises(DBSInputError, match="not left or right"):
        postop_nodes.postop_to_nodes(mrml.scene, wrong_side, folder)

    assert mrml.scene.GetNumberOfNodes() == count
    assert_postop_in_scene(mrml.scene, synthetic_postop(), "Case 7")


def test_summary_names_each_side_and_missing_values():
    text = postop_nodes.postop_summary(synthetic_postop())
    assert "Fusion: mattes-mi-rigid, metric -0.512, overlap 0.97" in text
    assert "L lead (medtronic-3389, automatic): error 1.2 mm (depth +0.5, radial 1.1, at target plane 1.1 mm), angle 2.4°" in text
    assert "R lead (boston-vercise-8, manual): error 0.9 mm (depth -0.3, radial 0.8, at target plane n/a mm)" in text
    assert "frame X +0.9  Y -0.8  Z +0.4 mm" in text
    assert "warning: right lead placed by hand" in text


def test_saved_bundle_keeps_the_postop_nodes(mrml, make_mrml, tmp_path):
    postop = synthetic_postop()
    ct = _ct_node(mrml.scene)
    subject_hierarchy.place_in_folder(mrml.scene, ct, subject_hierarchy.case_folder(mrml.scene, "Case 7"))
    case_pipeline.postop_to_scene(mrml.scene, "Case 7", postop, ct)
    plan = {"trajectories": [], "indirect": {}, "acpc": {}}

    paths = case_pipeline.save_case(mrml.scene, plan, tmp_path / "out", "Case 7", postop)

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Case_7.mrb", "plan.json", "postop.json"]
    assert json.loads(paths["postop"].read_text()) == postop
    reloaded = make_mrml()
    scene_files.load_mrb(reloaded.scene, paths["scene"])
    assert_postop_in_scene(reloaded.scene, postop, "Case 7")
    ct_back = reloaded.scene.GetFirstNodeByName("Post-op CT")
    assert ct_back.GetParentTransformNode().GetName() == postop_nodes.TRANSFORM_NODE
    assert postop_nodes.is_postop_node(ct_back.GetParentTransformNode())
    # a later evaluation in the reloaded scene still replaces the reloaded nodes
    classes = ("vtkMRMLModelNode", "vtkMRMLMarkupsFiducialNode", "vtkMRMLTableNode", "vtkMRMLLinearTransformNode")
    counts = [reloaded.scene.GetNumberOfNodesByClass(name) for name in classes]
    case_pipeline.postop_to_scene(reloaded.scene, "Case 7", postop, ct_back)
    assert [reloaded.scene.GetNumberOfNodesByClass(name) for name in classes] == counts
    assert_postop_in_scene(reloaded.scene, postop, "Case 7")
