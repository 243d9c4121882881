"""Per-structure statistics and quality flags of a label map (DESIGN §5), torch-free so that a
user-corrected label map can be checked without the segmentation model.

Flags: ``missing``; ``fragmented`` (pieces outside the main body holding at least 5% of the volume,
or 5 mm³); ``implausible_volume`` (below 20% of the typical lower bound or above twice the upper
bound); ``wrong_side`` (centroid on the other side of the AC-PC midsagittal plane).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from ..geometry.acpc import AcpcSpace, describe_acpc_point
from ..io.volumes import Volume
from . import labels as label_codes

#: A structure whose volume is below this fraction of its typical lower bound is flagged (DESIGN §5: ~20%).
SMALL_VOLUME_FRACTION = 0.2
#: ... or above this multiple of its typical upper bound.
LARGE_VOLUME_FACTOR = 2.0


@dataclass
class StructureStats:
    code: int
    name: str
    side: str
    volume_mm3: float
    centroid_ras: Optional[list]
    centroid_acpc: Optional[list]
    components: int
    flags: list[str]
    #: Mean max-posterior over the structure's voxels (set by the segmentation engine; None otherwise).
    confidence: Optional[float] = None

    def to_dict(self) -> dict:
        data = {"code": self.code, "name": self.name, "side": self.side, "volume_mm3": round(self.volume_mm3, 1),
                "centroid_ras": self.centroid_ras, "centroid_acpc": self.centroid_acpc,
                "components": self.components, "flags": self.flags}
        if self.confidence is not None:
            data["confidence"] = self.confidence
        if self.centroid_acpc is not None:
            data["centroid_acpc_clinical"] = describe_acpc_point(self.centroid_acpc)
        return data


def structure_quality(labels: Volume, acpc: AcpcSpace) -> list[StructureStats]:
    """Volume, centroid (RAS and AC-PC) and quality flags of each structure of a label map."""
    voxel_mm3 = float(abs(np.linalg.det(labels.ijk_to_ras[:3, :3])))
    connectivity = np.ones((3, 3, 3), dtype=bool)
    stats = []
    for structure in label_codes.STRUCTURES:
        mask = labels.array == structure.code
        count = int(mask.sum())
        if count == 0:
            stats.append(StructureStats(structure.code, structure.name, structure.side, 0.0, None, None, 0, ["missing"]))
            continue
        flags = []
        volume_mm3 = count * voxel_mm3
        components, number = ndimage.label(mask, connectivity)
        if number > 1:
            sizes = np.sort(ndimage.sum(mask, components, index=np.arange(1, number + 1)))[::-1]
            if sizes[1:].sum() * voxel_mm3 >= max(5.0, 0.05 * volume_mm3):
                flags.append("fragmented")
        low, high = structure.typical_volume_mm3
        if volume_mm3 < SMALL_VOLUME_FRACTION * low or volume_mm3 > LARGE_VOLUME_FACTOR * high:
            flags.append("implausible_volume")
        centroid_ras = labels.ijk_to_ras_points(np.argwhere(mask).mean(axis=0)[::-1])
        centroid_acpc = acpc.to_acpc(centroid_ras)
        if (centroid_acpc[0] > 0) != (structure.side == "right"):
            flags.append("wrong_side")
        stats.append(StructureStats(structure.code, structure.name, structure.side, volume_mm3,
                                    np.round(centroid_ras, 2).tolist(), np.round(centroid_acpc, 2).tolist(),
                                    number, flags))
    return stats
