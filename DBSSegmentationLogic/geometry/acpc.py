"""AC-PC space (DESIGN §4): origin at the mid-commissural point (MCP).

y = unit(AC - PC) points anterior; with M a midline point above the AC-PC line,
x = unit(y × (M - AC)) is the normal of the midsagittal plane pointing to the patient's right;
z = x × y points superior.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.exceptions import DBSInputError

#: Below this AC-PC distance (mm) the landmarks cannot be real commissures.
MIN_ACPC_LENGTH_MM = 5.0
#: Sine of the smallest angle allowed between the AC-PC line and the line from AC to the midline point.
MIN_MIDLINE_SINE = 0.05


def as_point(value, name: str) -> np.ndarray:
    """A finite 3-vector, or a clear error naming the point."""
    point = np.asarray(value, dtype=float)
    if point.shape != (3,):
        raise DBSInputError(f"{name} must have 3 coordinates, got shape {point.shape}")
    if not np.all(np.isfinite(point)):
        raise DBSInputError(f"{name} has a non-finite coordinate: {point.tolist()}")
    return point


@dataclass(frozen=True)
class AcpcSpace:
    """Rigid map between world RAS and AC-PC coordinates. ``axes_ras`` rows are x, y, z in RAS."""

    ac_ras: np.ndarray
    pc_ras: np.ndarray
    midline_ras: np.ndarray
    mcp_ras: np.ndarray
    axes_ras: np.ndarray

    @classmethod
    def from_landmarks(cls, ac_ras, pc_ras, midline_ras) -> "AcpcSpace":
        ac = as_point(ac_ras, "AC")
        pc = as_point(pc_ras, "PC")
        midline = as_point(midline_ras, "midline point")
        ac_to_pc_mm = float(np.linalg.norm(ac - pc))
        if ac_to_pc_mm < MIN_ACPC_LENGTH_MM:
            raise DBSInputError(
                f"AC and PC are {ac_to_pc_mm:.2f} mm apart (at least {MIN_ACPC_LENGTH_MM} mm expected): "
                "they must be two distinct landmarks"
            )
        y_axis = (ac - pc) / ac_to_pc_mm
        ac_to_midline = midline - ac
        normal = np.cross(y_axis, ac_to_midline)
        normal_length = float(np.linalg.norm(normal))
        if normal_length < MIN_MIDLINE_SINE * max(float(np.linalg.norm(ac_to_midline)), 1e-12):
            raise DBSInputError(
                "AC, PC and the midline point are (nearly) collinear: the midline point must lie "
                "in the midsagittal plane, well above the AC-PC line"
            )
        x_axis = normal / normal_length
        z_axis = np.cross(x_axis, y_axis)
        # Sanity checks against the image's own RAS axes: a swapped AC/PC or a midline point below
        # the AC-PC line would silently mirror left and right.
        if y_axis[1] <= 0:
            raise DBSInputError(
                "AC lies posterior to PC in the image's RAS axes: are AC and PC swapped?"
            )
        if x_axis[0] <= 0:
            raise DBSInputError(
                "the midline point lies below the AC-PC line (the AC-PC right axis would point to the "
                "patient's left): give a midline point above the AC-PC line"
            )
        return cls(ac, pc, midline, (ac + pc) / 2.0, np.vstack([x_axis, y_axis, z_axis]))

    @property
    def acpc_length_mm(self) -> float:
        return float(np.linalg.norm(self.ac_ras - self.pc_ras))

    def to_acpc(self, points_ras) -> np.ndarray:
        """RAS mm (..., 3) to AC-PC (x right, y anterior, z superior) mm."""
        return (np.asarray(points_ras, dtype=float) - self.mcp_ras) @ self.axes_ras.T

    def to_ras(self, points_acpc) -> np.ndarray:
        """AC-PC mm (..., 3) to RAS mm."""
        return np.asarray(points_acpc, dtype=float) @ self.axes_ras + self.mcp_ras

    def vector_to_acpc(self, vector_ras) -> np.ndarray:
        """A direction or displacement (no translation) from RAS to AC-PC axes."""
        return np.asarray(vector_ras, dtype=float) @ self.axes_ras.T

    def matrix_ras_to_acpc(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping RAS to AC-PC."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.axes_ras
        matrix[:3, 3] = -self.axes_ras @ self.mcp_ras
        return matrix


def describe_acpc_point(point_acpc) -> dict:
    """Clinical reading of an AC-PC point: lateral distance with its side, AP and vertical."""
    x, y, z = (float(v) for v in point_acpc)
    side = "right" if x > 0 else "left" if x < 0 else "midline"
    return {"lateral_mm": abs(x), "side": side, "ap_mm": y, "vertical_mm": z}
