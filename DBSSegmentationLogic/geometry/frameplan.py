"""A frame plan from landmarks: target and entry in RAS, AC-PC and Leksell coordinates, ring and arc."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .acpc import AcpcSpace, describe_acpc_point
from .frame import FrameSpace, round_to_half
from .trajectory import Trajectory


@dataclass
class FramePlan:
    acpc: AcpcSpace
    frame: FrameSpace
    trajectory: Trajectory
    mounting: str
    ring_deg: float
    arc_deg: float

    @property
    def target_acpc(self) -> np.ndarray:
        return self.acpc.to_acpc(self.trajectory.target_ras)

    @property
    def entry_acpc(self) -> np.ndarray:
        return self.acpc.to_acpc(self.trajectory.entry_ras)

    @property
    def target_leksell(self) -> np.ndarray:
        return self.frame.leksell(self.trajectory.target_ras)

    @property
    def entry_leksell(self) -> np.ndarray:
        return self.frame.leksell(self.trajectory.entry_ras)

    @property
    def target_side(self) -> str:
        """The hemisphere of the target: the sign of its AC-PC lateral coordinate."""
        return describe_acpc_point(self.target_acpc)["side"]

    def to_dict(self) -> dict:
        def leksell_dict(xyz):
            return {
                "X_mm": float(xyz[0]), "Y_mm": float(xyz[1]), "Z_mm": float(xyz[2]),
                "set_X_mm": round_to_half(xyz[0]), "set_Y_mm": round_to_half(xyz[1]), "set_Z_mm": round_to_half(xyz[2]),
            }

        return {
            "coordinate_system": "RAS (mm); AC-PC origin at the mid-commissural point; Leksell X=100-R, Y=100+A, Z=100-S",
            "landmarks_ras": {
                "ac": self.acpc.ac_ras.tolist(),
                "pc": self.acpc.pc_ras.tolist(),
                "midline": self.acpc.midline_ras.tolist(),
                "mcp": self.acpc.mcp_ras.tolist(),
            },
            "acpc_length_mm": self.acpc.acpc_length_mm,
            "frame": self.frame.description,
            "image_to_frame_ras": self.frame.image_to_frame_ras.tolist(),
            "mounting": self.mounting,
            "target": {
                "side": self.target_side,
                "ras": self.trajectory.target_ras.tolist(),
                "acpc": self.target_acpc.tolist(),
                "acpc_clinical": describe_acpc_point(self.target_acpc),
                "leksell": leksell_dict(self.target_leksell),
            },
            "entry": {
                "ras": self.trajectory.entry_ras.tolist(),
                "acpc": self.entry_acpc.tolist(),
                "leksell": leksell_dict(self.entry_leksell),
            },
            "ring_deg": self.ring_deg,
            "arc_deg": self.arc_deg,
            "set_ring_deg": round_to_half(self.ring_deg),
            "set_arc_deg": round_to_half(self.arc_deg),
            "trajectory_length_mm": self.trajectory.length_mm,
        }


def compute_frame_plan(
    ac_ras,
    pc_ras,
    midline_ras,
    target_ras,
    entry_ras,
    mounting: str = "lateral-right",
    image_to_frame: Optional[FrameSpace] = None,
) -> FramePlan:
    """Plan one trajectory. Without ``image_to_frame`` the virtual (AC-PC aligned) frame is used."""
    acpc = AcpcSpace.from_landmarks(ac_ras, pc_ras, midline_ras)
    frame = image_to_frame if image_to_frame is not None else FrameSpace.virtual(acpc)
    trajectory = Trajectory(entry_ras=entry_ras, target_ras=target_ras)
    ring_deg, arc_deg = frame.ring_arc(trajectory.target_ras, trajectory.entry_ras, mounting)
    return FramePlan(acpc, frame, trajectory, mounting, ring_deg, arc_deg)
