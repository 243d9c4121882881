"""A case plan (``plan.json``, ``DBSSegmentationLogic.planning.plan.CasePlan.to_dict()``) as MRML nodes.

- point list "Targets": the direct targets, labelled as the trajectories ("L STN", "R STN", …);
- point list "Indirect targets": the AC-PC atlas targets ("L STN indirect", "R GPi indirect", …);
- point list "AC-PC landmarks": AC, PC, Midline and the mid-commissural point (MCP);
- one line per trajectory ("L STN trajectory"), from the entry to the target;
- one linear transform per trajectory ("L STN trajectory transform"): its origin is the target and its
  z axis points along the trajectory towards the entry, so a slice view resliced by it
  (:func:`reslice_along_trajectory`) looks down the probe (probe's-eye view, as SlicerNetstim's
  StereotacticPlan does);
- table "Plan coordinates": one row per point with RAS, AC-PC and (for the trajectory points) Leksell
  X/Y/Z and ring/arc, exact and as set on the frame, and which frame they are in (the virtual AC-PC
  frame or a real frame registration); the plan itself is kept as JSON on the table (attribute
  ``DBSTargeting.plan``), so a reloaded scene still holds every number of the plan.

Every node goes into the case's subject-hierarchy folder and carries ``DBSTargeting.role = plan``: planning
the case again replaces the nodes of the previous plan (as post-op does for its own). Imports only ``vtk``,
numpy and MRML classes.
"""
from __future__ import annotations

import json
import math

import numpy as np
import vtk

from .subject_hierarchy import nodes_in_folder, place_in_folder

TARGETS_NODE = "Targets"
INDIRECT_NODE = "Indirect targets"
LANDMARKS_NODE = "AC-PC landmarks"
TABLE_NODE = "Plan coordinates"
TRAJECTORY_SUFFIX = " trajectory"
TRANSFORM_SUFFIX = " trajectory transform"
PLAN_ATTRIBUTE = "DBSTargeting.plan"
ROLE_ATTRIBUTE = "DBSTargeting.role"
PLAN_ROLE = "plan"
VIRTUAL_FRAME = "virtual frame (AC-PC aligned, MCP at the frame centre)"

#: Indirect-target names as clinicians write them.
_NUCLEUS_NAMES = {"stn": "STN", "gpi": "GPi", "vim": "Vim"}

#: Table columns: (name, kind) with kind "string" or "double"; doubles of a point that has no such
#: value (e.g. ring/arc of an indirect target) are NaN.
TABLE_COLUMNS = (
    ("Point", "string"),
    ("Kind", "string"),
    ("R (mm)", "double"), ("A (mm)", "double"), ("S (mm)", "double"),
    ("AC-PC x (mm)", "double"), ("AC-PC y (mm)", "double"), ("AC-PC z (mm)", "double"),
    ("Leksell X (mm)", "double"), ("Leksell Y (mm)", "double"), ("Leksell Z (mm)", "double"),
    ("Ring (deg)", "double"), ("Arc (deg)", "double"),
    ("Frame setting", "string"),
    ("Frame", "string"),
)


def frame_label(plan: dict) -> str:
    """Which frame the Leksell coordinates and ring/arc of a plan are in: a real frame registration (the
    plan records its image-to-frame matrix) or the virtual AC-PC frame."""
    if plan.get("image_to_frame_ras") is not None:
        return f"real frame ({plan.get('frame_source') or plan.get('frame', 'image-to-frame transform')})"
    return VIRTUAL_FRAME


def indirect_label(side: str, kind: str) -> str:
    return f"{side[0].upper()} {_NUCLEUS_NAMES.get(kind, kind.upper())} indirect"


def point_list(scene, name: str, points: dict, folder_item: int, locked: bool = True):
    """Point list ``name`` with one labelled control point per ``{label: ras}`` item, in ``folder_item``."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for label, ras in points.items():
        node.AddControlPoint(vtk.vtkVector3d(*map(float, ras)), label)
    node.SetLocked(locked)
    node.CreateDefaultDisplayNodes()
    place_in_folder(scene, node, folder_item)
    return node


def _trajectory_line(scene, trajectory: dict, folder_item: int):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", trajectory["name"] + TRAJECTORY_SUFFIX)
    node.AddControlPoint(vtk.vtkVector3d(*map(float, trajectory["entry_ras"])), "entry")
    node.AddControlPoint(vtk.vtkVector3d(*map(float, trajectory["target_ras"])), "target")
    node.SetLocked(True)
    node.CreateDefaultDisplayNodes()
    node.SetAttribute("DBSTargeting.side", trajectory["side"])
    place_in_folder(scene, node, folder_item)
    return node


def coordinate_rows(plan: dict) -> list[dict]:
    """The rows of the coordinate table, as plain dicts keyed by column name."""
    nan3 = [math.nan] * 3
    frame = frame_label(plan)
    rows = []
    for trajectory in plan["trajectories"]:
        setting = (
            "X {:.1f} Y {:.1f} Z {:.1f}, ring {:.1f}°, arc {:.1f}° ({})".format(
                *trajectory["set_target_leksell"], trajectory["set_ring_deg"], trajectory["set_arc_deg"], plan["mounting"]
            )
        )
        for point in ("target", "entry"):
            rows.append(_row(
                f"{trajectory['name']} {point}", f"{trajectory['target_kind']} {point}",
                trajectory[f"{point}_ras"], trajectory[f"{point}_acpc"], trajectory[f"{point}_leksell"],
                trajectory["ring_deg"], trajectory["arc_deg"], setting if point == "target" else "", frame,
            ))
    for kind, sides in plan["indirect"].items():
        for side, point in sides.items():
            rows.append(_row(indirect_label(side, kind), f"{kind} indirect", point["ras"], point["acpc"], nan3,
                             math.nan, math.nan, "", ""))
    acpc = plan["acpc"]
    for label, key in (("AC", "ac_ras"), ("PC", "pc_ras"), ("Midline", "midline_ras"), ("MCP", "mcp_ras")):
        rows.append(_row(label, "landmark", acpc[key], nan3, nan3, math.nan, math.nan, "", ""))
    return rows


def _row(point, kind, ras, acpc, leksell, ring, arc, setting, frame) -> dict:
    values = [point, kind, *ras, *acpc, *leksell, ring, arc, setting, frame]
    return {name: value for (name, _), value in zip(TABLE_COLUMNS, values)}


def table_node(scene, name: str, columns, rows: list[dict], folder_item: int, attributes: dict | None = None):
    """Locked table node ``name`` in ``folder_item``: ``columns`` as ``TABLE_COLUMNS`` ((name, "string" |
    "double"), …), one row per dict of ``rows`` (keyed by column name; ``None`` numbers become NaN)."""
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    for column_name, kind in columns:
        column = vtk.vtkStringArray() if kind == "string" else vtk.vtkDoubleArray()
        column.SetName(column_name)
        column.SetNumberOfTuples(len(rows))
        for index, row in enumerate(rows):
            value = row[column_name]
            column.SetValue(index, str(value) if kind == "string" else (math.nan if value is None else float(value)))
        table.AddColumn(column)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetLocked(True)
    for key, value in (attributes or {}).items():
        node.SetAttribute(key, value)
    node.Modified()
    place_in_folder(scene, node, folder_item)
    return node


def coordinate_table(scene, plan: dict, folder_item: int):
    """Table node with :func:`coordinate_rows`; the plan's JSON is kept in ``PLAN_ATTRIBUTE``."""
    node = table_node(scene, TABLE_NODE, TABLE_COLUMNS, coordinate_rows(plan), folder_item,
                      {PLAN_ATTRIBUTE: json.dumps(plan)})
    node.SetDescription(f"Leksell coordinates and ring/arc in the {frame_label(plan)}; {plan['mounting']} mounting")
    return node


def table_rows(node) -> list[dict]:
    """A table node's rows as dicts keyed by column name (numbers as floats)."""
    table = node.GetTable()
    rows = []
    for row in range(table.GetNumberOfRows()):
        values = {}
        for col in range(table.GetNumberOfColumns()):
            column = table.GetColumn(col)
            value = table.GetValue(row, col)
            values[column.GetName()] = value.ToString() if column.IsA("vtkStringArray") else value.ToDouble()
        rows.append(values)
    return rows


def trajectory_matrix(target_ras, entry_ras) -> np.ndarray:
    """4x4 matrix from the trajectory's own frame to RAS: origin at the target, z along the trajectory
    towards the entry, x as close to the patient's right as the trajectory allows, y = z × x."""
    target, entry = np.asarray(target_ras, float), np.asarray(entry_ras, float)
    z = entry - target
    length = float(np.linalg.norm(z))
    if length < 1e-6:
        raise ValueError("a trajectory's entry and target coincide")
    z /= length
    x = np.array([1.0, 0.0, 0.0]) - z[0] * z
    if np.linalg.norm(x) < 1e-3:  # a purely lateral trajectory: use anterior instead
        x = np.array([0.0, 1.0, 0.0]) - z[1] * z
    x /= np.linalg.norm(x)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = x, np.cross(z, x), z, target
    return matrix


def _trajectory_transform(scene, trajectory: dict, folder_item: int):
    from .mrml_glue import vtk_matrix_from_array

    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", trajectory["name"] + TRANSFORM_SUFFIX)
    node.SetMatrixTransformToParent(vtk_matrix_from_array(trajectory_matrix(trajectory["target_ras"], trajectory["entry_ras"])))
    node.SetAttribute("DBSTargeting.side", trajectory["side"])
    node.SetDescription("origin at the target, z axis towards the entry: reslice a slice view by it for the probe's-eye view")
    place_in_folder(scene, node, folder_item)
    return node


def reslice_along_trajectory(slice_node, transform_node) -> None:
    """Reslice a slice view perpendicular to a trajectory, centred on its target (probe's-eye view):
    the slice normal is the trajectory's z axis, its horizontal axis the trajectory's x axis."""
    from .mrml_glue import matrix_from_vtk

    to_world = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(to_world)
    matrix = matrix_from_vtk(to_world)
    normal, transverse, position = matrix[:3, 2], matrix[:3, 0], matrix[:3, 3]
    slice_node.SetSliceToRASByNTP(*normal, *transverse, *position, 0)


def is_plan_node(node) -> bool:
    return node is not None and node.GetAttribute(ROLE_ATTRIBUTE) == PLAN_ROLE


def remove_plan_nodes(scene, folder_item: int) -> int:
    """Remove the nodes of an earlier plan of a case folder; returns how many were removed."""
    from .mrml_glue import remove_node

    removed = 0
    for node in nodes_in_folder(scene, folder_item):
        if is_plan_node(node):
            remove_node(scene, node)
            removed += 1
    return removed


def plan_to_nodes(scene, plan: dict, folder_item: int) -> dict:
    """Every node of a plan, in ``folder_item``, replacing those of an earlier plan. Returns ``{"targets",
    "indirect", "landmarks", "trajectories" (list of lines), "transforms" (list), "table"}``."""
    targets = {trajectory["name"]: trajectory["target_ras"] for trajectory in plan["trajectories"]}
    indirect = {
        indirect_label(side, kind): point["ras"] for kind, sides in plan["indirect"].items() for side, point in sides.items()
    }
    acpc = plan["acpc"]
    landmarks = {"AC": acpc["ac_ras"], "PC": acpc["pc_ras"], "Midline": acpc["midline_ras"], "MCP": acpc["mcp_ras"]}
    for trajectory in plan["trajectories"]:  # refuse a degenerate trajectory before anything changes
        trajectory_matrix(trajectory["target_ras"], trajectory["entry_ras"])
    remove_plan_nodes(scene, folder_item)
    nodes = {
        "targets": point_list(scene, TARGETS_NODE, targets, folder_item),
        "indirect": point_list(scene, INDIRECT_NODE, indirect, folder_item),
        "landmarks": point_list(scene, LANDMARKS_NODE, landmarks, folder_item),
        "trajectories": [_trajectory_line(scene, trajectory, folder_item) for trajectory in plan["trajectories"]],
        "transforms": [_trajectory_transform(scene, trajectory, folder_item) for trajectory in plan["trajectories"]],
        "table": coordinate_table(scene, plan, folder_item),
    }
    if plan.get("failures"):
        nodes["targets"].SetDescription(
            "; ".join(f"{side} side not planned: {reason}" for side, reason in plan["failures"].items())
        )
    nodes["indirect"].GetDisplayNode().SetSelectedColor(0.6, 0.6, 0.6)
    for node in (nodes["targets"], nodes["indirect"], nodes["landmarks"], nodes["table"], *nodes["trajectories"],
                 *nodes["transforms"]):
        node.SetAttribute(ROLE_ATTRIBUTE, PLAN_ROLE)
    return nodes
