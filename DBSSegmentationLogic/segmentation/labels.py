"""The one place that knows the label codes of our segmentation output.

Codes 1-10 (0 is background). "Left"/"right" are the patient's: a left structure has smaller RAS x
than the midline. CIT168 source codes: left hemisphere 1-16, right = left + 100 (Pauli et al. 2018).
Typical adult volume ranges (mm^3) are those of DESIGN section 5.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Structure:
    code: int
    name: str
    nucleus: str  # STN, RN, SN, GPi, GPe
    side: str  # "left" or "right" (the patient's)
    colour_rgb: tuple[int, int, int]
    cit168_codes: tuple[int, ...]
    typical_volume_mm3: tuple[float, float]


_COLOURS = {
    "STN": ((230, 128, 20), (255, 170, 60)),
    "RN": ((200, 30, 30), (240, 80, 80)),
    "SN": ((120, 60, 160), (170, 110, 210)),
    "GPi": ((30, 120, 200), (90, 170, 240)),
    "GPe": ((40, 160, 90), (100, 210, 140)),
}
_CIT168_LEFT = {"STN": (16,), "RN": (8,), "SN": (7, 9), "GPi": (6,), "GPe": (5,)}
_VOLUME_MM3 = {"STN": (100.0, 250.0), "RN": (250.0, 480.0), "SN": (400.0, 1000.0),
               "GPi": (450.0, 700.0), "GPe": (1100.0, 1500.0)}
NUCLEI = ("STN", "RN", "SN", "GPi", "GPe")


def _build() -> tuple[Structure, ...]:
    structures = []
    code = 1
    for nucleus in NUCLEI:
        for side_index, side in enumerate(("left", "right")):
            cit = tuple(c + 100 * side_index for c in _CIT168_LEFT[nucleus])
            structures.append(Structure(code, f"{nucleus}_{side}", nucleus, side,
                                        _COLOURS[nucleus][side_index], cit, _VOLUME_MM3[nucleus]))
            code += 1
    return tuple(structures)


STRUCTURES: tuple[Structure, ...] = _build()
BY_CODE: dict[int, Structure] = {s.code: s for s in STRUCTURES}
BY_NAME: dict[str, Structure] = {s.name: s for s in STRUCTURES}
NUM_CLASSES = len(STRUCTURES) + 1  # with background 0


def mirror_code(code: int) -> int:
    """The same nucleus on the other side (0 stays 0)."""
    if code == 0:
        return 0
    return code + 1 if BY_CODE[code].side == "left" else code - 1


def mirror_lookup() -> np.ndarray:
    """Array ``m`` with ``m[code]`` = code of the same nucleus on the other side."""
    return np.array([mirror_code(c) for c in range(NUM_CLASSES)], dtype=np.int64)


def cit168_to_ours(cit168_labels: np.ndarray) -> np.ndarray:
    """Map a CIT168 hard-label array to our codes (uint8); other CIT168 structures become 0."""
    lookup = np.zeros(256, dtype=np.uint8)
    for structure in STRUCTURES:
        for cit in structure.cit168_codes:
            lookup[cit] = structure.code
    return lookup[np.asarray(cit168_labels).astype(np.int64)]


def colour_table_lines() -> list[str]:
    """Slicer colour-table text (``code name R G B A``), background first."""
    lines = ["# DBS segmentation labels: code name R G B A", "0 background 0 0 0 0"]
    for s in STRUCTURES:
        r, g, b = s.colour_rgb
        lines.append(f"{s.code} {s.name} {r} {g} {b} 255")
    return lines


def label_table() -> list[dict]:
    """Codes, names, sides and colours as plain data (for JSON)."""
    return [{"code": s.code, "name": s.name, "nucleus": s.nucleus, "side": s.side,
             "colour_rgb": list(s.colour_rgb), "cit168_codes": list(s.cit168_codes),
             "typical_volume_mm3": list(s.typical_volume_mm3)} for s in STRUCTURES]
