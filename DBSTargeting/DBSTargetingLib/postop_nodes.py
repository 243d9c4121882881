"""A post-operative evaluation (``postop.json``, format ``dbs-postop/1``) as MRML nodes.

Every coordinate of ``postop.json`` is in the planning MRI's RAS (world), so the nodes below sit in
world space directly; only the post-operative CT itself is placed under the fusion transform.

- one model per lead ("L lead", "R lead"): a tube of the lead model's diameter (``DBSSegmentationLogic.postop.leads``)
  along the lead axis, from the tip to ``LEAD_SHOWN_LENGTH_MM`` above it;
- one point list per lead with the contact centres ("L contacts": "L C0" deepest … "L C3");
- point list "Lead tips" ("L tip", "R tip"), beside the plan's "Targets" ("L STN", "R STN");
- table "Post-op errors": one row per side with the tip and every error of ``errors`` (Euclidean, depth,
  radial, radial at the target plane, angular, per axis in RAS, AC-PC and frame); a missing value is
  NaN; the whole result is kept as JSON on the table (attribute ``DBSTargeting.postop``);
- linear transform "Post-op CT to MRI" holding ``fusion.ct_to_mri_ras``: the post-operative CT goes
  under it to show it fused to the MRI.

Everything goes into the case's subject-hierarchy folder and carries the attribute
``DBSTargeting.role = postop``: a new evaluation of the case replaces the nodes of the previous one
(the transform is updated in place, so what was placed under it stays there).
Imports only ``vtk``, numpy and MRML classes.
"""
from __future__ import annotations

import json
import math

import numpy as np
import vtk

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.postop.leads import LEAD_MODELS

from .mrml_glue import remove_node, vtk_matrix_from_array
from .plan_nodes import point_list, table_node
from .postop_job import check_postop
from .subject_hierarchy import nodes_in_folder, place_in_folder

TIPS_NODE = "Lead tips"
TABLE_NODE = "Post-op errors"
TRANSFORM_NODE = "Post-op CT to MRI"
LEAD_SUFFIX = " lead"
CONTACTS_SUFFIX = " contacts"
POSTOP_ATTRIBUTE = "DBSTargeting.postop"
ROLE_ATTRIBUTE = "DBSTargeting.role"
POSTOP_ROLE = "postop"
SIDE_ATTRIBUTE = "DBSTargeting.side"

#: How much of each lead the model shows, from the tip up (mm): the part in the target region.
LEAD_SHOWN_LENGTH_MM = 40.0
#: Facets around the tube of a lead model.
TUBE_SIDES = 24
SIDES = ("left", "right")

#: Table columns (as ``plan_nodes.TABLE_COLUMNS``) and where each value comes from:
#: ``(column, kind, source, key, index)`` with source "lead" or "errors" and index into a 3-vector.
_ERROR_FIELDS = (
    ("Side", "string", None, None, None),
    ("Lead model", "string", "lead", "model", None),
    ("Source", "string", "lead", "source", None),
    ("Tip R (mm)", "double", "lead", "tip_ras", 0),
    ("Tip A (mm)", "double", "lead", "tip_ras", 1),
    ("Tip S (mm)", "double", "lead", "tip_ras", 2),
    ("Euclidean (mm)", "double", "errors", "euclidean_mm", None),
    ("Depth (mm)", "double", "errors", "depth_mm", None),
    ("Radial (mm)", "double", "errors", "radial_mm", None),
    ("Radial at target plane (mm)", "double", "errors", "radial_at_target_plane_mm", None),
    ("Angular (deg)", "double", "errors", "angular_deg", None),
    ("RAS R (mm)", "double", "errors", "ras_mm", 0),
    ("RAS A (mm)", "double", "errors", "ras_mm", 1),
    ("RAS S (mm)", "double", "errors", "ras_mm", 2),
    ("AC-PC x (mm)", "double", "errors", "acpc_mm", 0),
    ("AC-PC y (mm)", "double", "errors", "acpc_mm", 1),
    ("AC-PC z (mm)", "double", "errors", "acpc_mm", 2),
    ("Frame X (mm)", "double", "errors", "frame_mm", 0),
    ("Frame Y (mm)", "double", "errors", "frame_mm", 1),
    ("Frame Z (mm)", "double", "errors", "frame_mm", 2),
)
ERROR_COLUMNS = tuple((column, kind) for column, kind, *_ in _ERROR_FIELDS)


def side_prefix(side: str) -> str:
    """"L" or "R", as the plan's node names ("L STN")."""
    return side[0].upper()


def contact_label(side: str, index: int) -> str:
    return f"{side_prefix(side)} C{index}"


def lead_model(name: str):
    """The lead model (``DBSSegmentationLogic.postop.leads.LeadModel``) named in ``postop.json``."""
    if name not in LEAD_MODELS:
        raise DBSInputError(f"unknown lead model '{name}': this module knows {', '.join(LEAD_MODELS)}")
    return LEAD_MODELS[name]


def lead_polydata(tip_ras, direction_ras, diameter_mm: float, length_mm: float = LEAD_SHOWN_LENGTH_MM) -> vtk.vtkPolyData:
    """Capped tube of ``diameter_mm`` along the lead axis, from the tip to ``length_mm`` above it."""
    tip = np.asarray(tip_ras, float)
    direction = np.asarray(direction_ras, float)
    norm = float(np.linalg.norm(direction))
    if norm < 1e-9:
        raise DBSInputError("a lead of the post-op result has a zero axis direction")
    line = vtk.vtkLineSource()
    line.SetPoint1(*tip)
    line.SetPoint2(*(tip + length_mm * direction / norm))
    tube = vtk.vtkTubeFilter()
    tube.SetInputConnection(line.GetOutputPort())
    tube.SetRadius(diameter_mm / 2.0)
    tube.SetNumberOfSides(TUBE_SIDES)
    tube.CappingOn()
    tube.Update()
    polydata = vtk.vtkPolyData()
    polydata.DeepCopy(tube.GetOutput())
    return polydata


def _mark(node, side: str = "") -> None:
    node.SetAttribute(ROLE_ATTRIBUTE, POSTOP_ROLE)
    if side:
        node.SetAttribute(SIDE_ATTRIBUTE, side)


def is_postop_node(node) -> bool:
    return node is not None and node.GetAttribute(ROLE_ATTRIBUTE) == POSTOP_ROLE


def _lead_model_node(scene, lead: dict, folder_item: int):
    model = lead_model(lead["model"])
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", side_prefix(lead["side"]) + LEAD_SUFFIX)
    node.SetAndObservePolyData(lead_polydata(lead["tip_ras"], lead["direction_ras"], model.diameter_mm))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetColor(0.75, 0.75, 0.8)
    display.SetVisibility2D(True)  # the lead's outline in the slice views
    node.SetDescription(f"{model.name} ({lead.get('source', 'automatic')}), {LEAD_SHOWN_LENGTH_MM:.0f} mm from the tip")
    _mark(node, lead["side"])
    place_in_folder(scene, node, folder_item)
    return node


def _contacts_node(scene, lead: dict, folder_item: int):
    contacts = {contact_label(lead["side"], n): centre for n, centre in enumerate(lead["contact_centres_ras"])}
    node = point_list(scene, side_prefix(lead["side"]) + CONTACTS_SUFFIX, contacts, folder_item)
    node.GetDisplayNode().SetSelectedColor(1.0, 0.8, 0.2)
    _mark(node, lead["side"])
    return node


def error_rows(postop: dict) -> list[dict]:
    """Rows of the error table, one per side (left first) with a lead or errors."""
    leads = {lead["side"]: lead for lead in postop["leads"]}
    errors = postop["errors"] or {}
    rows = []
    for side in SIDES:
        if side not in leads and side not in errors:
            continue
        sources = {"lead": leads.get(side) or {}, "errors": errors.get(side) or {}}
        row = {}
        for column, kind, source, key, index in _ERROR_FIELDS:
            if source is None:
                value = side
            else:
                value = sources[source].get(key)
                if value is not None and index is not None:
                    value = value[index]
            if kind == "string":
                row[column] = "" if value is None else value
            else:
                row[column] = math.nan if value is None else float(value)
        rows.append(row)
    return rows


def fusion_transform_node(scene, postop: dict, folder_item: int):
    """The case's "Post-op CT to MRI" transform (made once, then updated) holding ``ct_to_mri_ras``."""
    fusion = postop["fusion"]
    matrix = np.asarray(fusion["ct_to_mri_ras"], float)
    node = next((n for n in nodes_in_folder(scene, folder_item)
                 if is_postop_node(n) and n.IsA("vtkMRMLLinearTransformNode")), None)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", TRANSFORM_NODE)
        _mark(node)
    node.SetMatrixTransformToParent(vtk_matrix_from_array(matrix))  # maps CT RAS (child) to MRI RAS (parent)
    details = ", ".join(f"{key} {fusion[key]:.4g}" for key in ("metric", "overlap", "seconds")
                        if isinstance(fusion.get(key), (int, float)))
    node.SetDescription(f"post-operative CT fused to the MRI: {fusion.get('method', '?')}" + (f" ({details})" if details else ""))
    place_in_folder(scene, node, folder_item)
    return node


def place_ct_under_fusion(ct_node, transform_node) -> bool:
    """Put the post-operative CT under the fusion transform, unless the user placed it under another
    transform of their own (then it is left alone and ``False`` returned)."""
    parent = ct_node.GetParentTransformNode()
    if parent is not None and parent is not transform_node and not is_postop_node(parent):
        return False
    ct_node.SetAndObserveTransformNodeID(transform_node.GetID())
    return True


def remove_postop_nodes(scene, folder_item: int, keep_transform: bool = True) -> int:
    """Remove the post-op nodes of a case folder (all but the fusion transform when ``keep_transform``)."""
    removed = 0
    for node in nodes_in_folder(scene, folder_item):
        if not is_postop_node(node) or (keep_transform and node.IsA("vtkMRMLTransformNode")):
            continue
        remove_node(scene, node)
        removed += 1
    return removed


def postop_to_nodes(scene, postop: dict, folder_item: int, ct_node=None) -> dict:
    """Every node of a post-op result, in ``folder_item``, replacing those of an earlier one.
    ``ct_node`` (the post-operative CT) is placed under the fusion transform. Returns ``{"leads",
    "contacts" (lists, one node per lead), "tips", "table", "transform"}``."""
    check_postop(postop)
    for lead in postop["leads"]:
        lead_model(lead["model"])  # refuse an unknown model before anything changes in the scene
    remove_postop_nodes(scene, folder_item)
    leads = sorted(postop["leads"], key=lambda lead: SIDES.index(lead["side"]))
    tips = point_list(scene, TIPS_NODE, {f"{side_prefix(lead['side'])} tip": lead["tip_ras"] for lead in leads}, folder_item)
    tips.GetDisplayNode().SetSelectedColor(0.2, 0.9, 0.9)
    _mark(tips)
    table = table_node(scene, TABLE_NODE, ERROR_COLUMNS, error_rows(postop), folder_item,
                       {POSTOP_ATTRIBUTE: json.dumps(postop), ROLE_ATTRIBUTE: POSTOP_ROLE})
    if postop.get("warnings"):
        table.SetDescription("; ".join(postop["warnings"]))
    nodes = {
        "leads": [_lead_model_node(scene, lead, folder_item) for lead in leads],
        "contacts": [_contacts_node(scene, lead, folder_item) for lead in leads],
        "tips": tips,
        "table": table,
        "transform": fusion_transform_node(scene, postop, folder_item),
    }
    if ct_node is not None:
        place_ct_under_fusion(ct_node, nodes["transform"])
    return nodes


def _number(value, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def postop_summary(postop: dict) -> str:
    """A few lines for the user: the fusion, each lead's error, then the warnings."""
    fusion = postop["fusion"]
    lines = [f"Fusion: {fusion.get('method', '?')}, metric {_number(fusion.get('metric'), '.3f')}, "
             f"overlap {_number(fusion.get('overlap'), '.2f')}"]
    for row in error_rows(postop):
        lines.append(
            f"{side_prefix(row['Side'])} lead ({row['Lead model'] or 'not found'}, {row['Source'] or '-'}): "
            f"error {_number(row['Euclidean (mm)'], '.1f')} mm (depth {_number(row['Depth (mm)'], '+.1f')}, "
            f"radial {_number(row['Radial (mm)'], '.1f')}, at target plane {_number(row['Radial at target plane (mm)'], '.1f')} mm), "
            f"angle {_number(row['Angular (deg)'], '.1f')}°"
        )
        if not math.isnan(row["Frame X (mm)"]):
            lines.append(f"  frame X {row['Frame X (mm)']:+.1f}  Y {row['Frame Y (mm)']:+.1f}  Z {row['Frame Z (mm)']:+.1f} mm")
    lines += [f"warning: {warning}" for warning in postop.get("warnings") or []]
    return "\n".join(lines)
