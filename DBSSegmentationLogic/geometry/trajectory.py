"""Straight trajectory geometry from an entry point to a target, in RAS mm."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.exceptions import DBSInputError
from .acpc import as_point

#: Entry and target closer than this cannot define a trajectory.
MIN_TRAJECTORY_LENGTH_MM = 1.0


@dataclass(frozen=True)
class Trajectory:
    entry_ras: np.ndarray
    target_ras: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "entry_ras", as_point(self.entry_ras, "entry"))
        object.__setattr__(self, "target_ras", as_point(self.target_ras, "target"))
        if self.length_mm < MIN_TRAJECTORY_LENGTH_MM:
            raise DBSInputError(
                f"entry and target are {self.length_mm:.3f} mm apart: they must be distinct points"
            )

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.target_ras - self.entry_ras))

    @property
    def insertion_direction_ras(self) -> np.ndarray:
        """Unit vector from entry towards target (the direction the lead advances)."""
        return (self.target_ras - self.entry_ras) / self.length_mm

    def point_at_depth(self, depth_mm: float) -> np.ndarray:
        """Point ``depth_mm`` from the entry along the insertion direction (beyond the target if larger
        than the length; negative values lie outside, above the entry)."""
        return self.entry_ras + float(depth_mm) * self.insertion_direction_ras

    def point_from_target(self, offset_mm: float) -> np.ndarray:
        """Point ``offset_mm`` past the target along the insertion direction (negative: above it)."""
        return self.target_ras + float(offset_mm) * self.insertion_direction_ras

    def distance_to_point_mm(self, point_ras) -> float:
        """Shortest distance from a point to the segment entry–target."""
        point = as_point(point_ras, "point")
        along = np.clip(np.dot(point - self.entry_ras, self.insertion_direction_ras), 0.0, self.length_mm)
        return float(np.linalg.norm(point - self.point_at_depth(along)))
