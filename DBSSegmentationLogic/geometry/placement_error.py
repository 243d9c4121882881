"""Planned-versus-actual lead placement error (DESIGN §6).

With planned target T, entry E, d = unit(T - E), actual tip P and actual lead axis through Q with
direction w: Euclidean |P - T|; depth (P - T)·d (positive = too deep); radial
|(P - T) - ((P - T)·d) d|; radial at the target plane (where the actual axis crosses the plane through
T normal to d); angular acos(w·d) with w oriented like d; per-axis errors in RAS, AC-PC and frame axes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..io.exceptions import DBSInputError
from .acpc import AcpcSpace, as_point
from .frame import FrameSpace
from .trajectory import Trajectory

#: Below this |w·d| the actual axis is (nearly) parallel to the target plane: no crossing point.
MIN_AXIS_PLANE_COSINE = 1e-6


@dataclass
class PlacementError:
    euclidean_mm: float
    depth_mm: float
    radial_mm: float
    radial_at_target_plane_mm: Optional[float]
    angular_deg: float
    ras_mm: list  # (P - T) along R, A, S
    acpc_mm: Optional[list]  # along AC-PC x (right), y (anterior), z (superior)
    frame_mm: Optional[list]  # along Leksell X, Y, Z

    def to_dict(self) -> dict:
        return asdict(self)


def placement_error(
    planned: Trajectory,
    tip_ras,
    axis_direction_ras,
    axis_point_ras=None,
    acpc: Optional[AcpcSpace] = None,
    frame: Optional[FrameSpace] = None,
) -> PlacementError:
    """Errors of an actual lead (tip, axis) against a planned trajectory. ``axis_point_ras`` defaults
    to the tip; the axis direction's sign does not matter (it is oriented like the plan)."""
    target = planned.target_ras
    d = planned.insertion_direction_ras
    tip = as_point(tip_ras, "actual tip")
    axis_point = tip if axis_point_ras is None else as_point(axis_point_ras, "actual axis point")
    w = as_point(axis_direction_ras, "actual axis direction")
    w_length = float(np.linalg.norm(w))
    if w_length < 1e-9:
        raise DBSInputError("the actual lead axis direction is a zero vector")
    w = w / w_length
    if np.dot(w, d) < 0:
        w = -w

    offset = tip - target
    depth = float(np.dot(offset, d))
    radial = float(np.linalg.norm(offset - depth * d))
    cosine = float(np.dot(w, d))
    if cosine > MIN_AXIS_PLANE_COSINE:
        crossing = axis_point + (float(np.dot(target - axis_point, d)) / cosine) * w
        radial_at_plane: Optional[float] = float(np.linalg.norm(crossing - target))
    else:
        radial_at_plane = None
    angular = math.degrees(math.acos(min(1.0, max(-1.0, cosine))))

    frame_offset = None
    if frame is not None:
        # Leksell axes are frame R, A, S with X and Z reversed.
        frame_offset = (frame.vector_to_frame_ras(offset) * np.array([-1.0, 1.0, -1.0])).tolist()
    return PlacementError(
        euclidean_mm=float(np.linalg.norm(offset)),
        depth_mm=depth,
        radial_mm=radial,
        radial_at_target_plane_mm=radial_at_plane,
        angular_deg=angular,
        ras_mm=offset.tolist(),
        acpc_mm=None if acpc is None else acpc.vector_to_acpc(offset).tolist(),
        frame_mm=frame_offset,
    )
