"""A case plan (``plan.json``, ``DBSSegmentationLogic.planning.plan.CasePlan.to_dict()``) as MRML nodes.

- point list "Targets": the direct targets, labelled as the trajectories ("L STN", "R STN", …);
- point list "Indirect targets": the AC-PC atlas targets ("L STN indirect", "R GPi indirect", …);
- point list "AC-PC landmarks": AC, PC, Midline and the mid-commissural point (MCP);
- one line per trajectory ("L STN trajectory"), from the entry to the target;
- table "Plan coordinates": one row per point with RAS, AC-PC and (for the trajectory points) Leksell
  X/Y/Z and ring/arc, exact and as set on the frame; the plan itself is kept as JSON on the table
  (attribute ``DBSTargeting.plan``), so a reloaded scene still holds every number of the plan.

Every node goes into the case's subject-hierarchy folder. Imports only ``vtk`` and MRML classes.
"""
from __future__ import annotations

import json
import math

import vtk

from .subject_hierarchy import place_in_folder

TARGETS_NODE = "Targets"
INDIRECT_NODE = "Indirect targets"
LANDMARKS_NODE = "AC-PC landmarks"
TABLE_NODE = "Plan coordinates"
TRAJECTORY_SUFFIX = " trajectory"
PLAN_ATTRIBUTE = "DBSTargeting.plan"

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
)


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
                trajectory["ring_deg"], trajectory["arc_deg"], setting if point == "target" else "",
            ))
    for kind, sides in plan["indirect"].items():
        for side, point in sides.items():
            rows.append(_row(indirect_label(side, kind), f"{kind} indirect", point["ras"], point["acpc"], nan3,
                             math.nan, math.nan, ""))
    acpc = plan["acpc"]
    for label, key in (("AC", "ac_ras"), ("PC", "pc_ras"), ("Midline", "midline_ras"), ("MCP", "mcp_ras")):
        rows.append(_row(label, "landmark", acpc[key], nan3, nan3, math.nan, math.nan, ""))
    return rows


def _row(point, kind, ras, acpc, leksell, ring, arc, setting) -> dict:
    values = [point, kind, *ras, *acpc, *leksell, ring, arc, setting]
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
    return table_node(scene, TABLE_NODE, TABLE_COLUMNS, coordinate_rows(plan), folder_item,
                      {PLAN_ATTRIBUTE: json.dumps(plan)})


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


def plan_to_nodes(scene, plan: dict, folder_item: int) -> dict:
    """Every node of a plan, in ``folder_item``. Returns ``{"targets", "indirect", "landmarks",
    "trajectories" (list), "table"}``."""
    targets = {trajectory["name"]: trajectory["target_ras"] for trajectory in plan["trajectories"]}
    indirect = {
        indirect_label(side, kind): point["ras"] for kind, sides in plan["indirect"].items() for side, point in sides.items()
    }
    acpc = plan["acpc"]
    landmarks = {"AC": acpc["ac_ras"], "PC": acpc["pc_ras"], "Midline": acpc["midline_ras"], "MCP": acpc["mcp_ras"]}
    nodes = {
        "targets": point_list(scene, TARGETS_NODE, targets, folder_item),
        "indirect": point_list(scene, INDIRECT_NODE, indirect, folder_item),
        "landmarks": point_list(scene, LANDMARKS_NODE, landmarks, folder_item),
        "trajectories": [_trajectory_line(scene, trajectory, folder_item) for trajectory in plan["trajectories"]],
        "table": coordinate_table(scene, plan, folder_item),
    }
    if plan.get("failures"):
        nodes["targets"].SetDescription(
            "; ".join(f"{side} side not planned: {reason}" for side, reason in plan["failures"].items())
        )
    nodes["indirect"].GetDisplayNode().SetSelectedColor(0.6, 0.6, 0.6)
    return nodes
