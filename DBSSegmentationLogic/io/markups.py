"""Read and write Slicer markups files (``.mrk.json``) as labelled points in RAS mm.

Slicer writes control point positions in LPS by default (``"coordinateSystem": "LPS"``); both LPS and
RAS files are read, and every point is returned in RAS.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .exceptions import DBSInputError
from .json_documents import read_json_document
from .staged_output import write_json_atomic
from .volumes import lps_to_ras, ras_to_lps

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
    "Schema/markups-schema-v1.0.3.json#"
)

#: Landmark names the planner understands, with the control point labels accepted for each
#: (compared case-insensitively, ignoring spaces, '-' and '_').
LANDMARK_ALIASES = {
    "ac": ("ac", "anteriorcommissure"),
    "pc": ("pc", "posteriorcommissure"),
    "midline": ("midline", "mid", "ms", "midsagittal", "ih", "interhemispheric"),
    "target": ("target",),
    "entry": ("entry",),
}


def _normalise_label(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch not in " -_")


def read_markups_points(path) -> dict[str, np.ndarray]:
    """All defined control points of all markups in the file, by label, in RAS mm."""
    path = Path(path)
    document = read_json_document(path, "markups file")
    markups = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(markups, list) or not markups:
        raise DBSInputError(f"markups file {path} has no 'markups' list (not a Slicer .mrk.json file?)")
    points: dict[str, np.ndarray] = {}
    for markup in markups:
        if not isinstance(markup, dict):
            raise DBSInputError(f"markups file {path}: a markup entry is not an object")
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise DBSInputError(f"markups file {path}: unknown coordinateSystem '{system}' (LPS or RAS expected)")
        units = markup.get("coordinateUnits", "mm")
        if units != "mm":
            raise DBSInputError(f"markups file {path}: coordinates in '{units}', only mm is supported")
        for index, control_point in enumerate(markup.get("controlPoints") or []):
            if not isinstance(control_point, dict):
                raise DBSInputError(f"markups file {path}: control point {index + 1} is not an object")
            if control_point.get("positionStatus", "defined") != "defined":
                continue
            label = str(control_point.get("label", "")).strip()
            position = control_point.get("position")
            try:
                position = np.asarray(position, dtype=float)
            except (TypeError, ValueError):
                position = None
            if position is None or position.shape != (3,) or not np.all(np.isfinite(position)):
                raise DBSInputError(
                    f"markups file {path}: control point '{label or index + 1}' has no valid 3D position"
                )
            if not label:
                raise DBSInputError(f"markups file {path}: control point {index + 1} has no label")
            if label in points:
                raise DBSInputError(f"markups file {path}: label '{label}' is used by more than one control point")
            points[label] = lps_to_ras(position) if system == "LPS" else position
    if not points:
        raise DBSInputError(f"markups file {path} holds no defined control points")
    return points


def find_landmarks(points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pick the planner's landmarks (ac, pc, midline, target, entry) out of labelled points."""
    found: dict[str, np.ndarray] = {}
    for label, position in points.items():
        key = _normalise_label(label)
        for landmark, aliases in LANDMARK_ALIASES.items():
            if key in aliases:
                if landmark in found:
                    raise DBSInputError(f"more than one point is labelled as the {landmark} landmark")
                found[landmark] = position
    return found


def write_markups_points(path, points_ras: dict[str, np.ndarray], coordinate_system: str = "LPS") -> Path:
    """Write labelled RAS points as one Slicer point-list markup (atomic)."""
    control_points = []
    for number, (label, position_ras) in enumerate(points_ras.items(), start=1):
        position = ras_to_lps(position_ras) if coordinate_system == "LPS" else np.asarray(position_ras, float)
        control_points.append(
            {"id": str(number), "label": label, "position": [float(v) for v in position], "positionStatus": "defined"}
        )
    document = {
        "@schema": MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": coordinate_system,
                "coordinateUnits": "mm",
                "controlPoints": control_points,
            }
        ],
    }
    return write_json_atomic(path, document)
