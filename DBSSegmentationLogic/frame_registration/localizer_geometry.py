"""Localizer geometry: the N-localizer rods in frame coordinates, read from a JSON file or a preset.

The file gives each rod as a straight segment between two end points in Leksell X, Y, Z mm, and each
N-localizer as the names of its first vertical rod, its diagonal and its second vertical rod::

    {"name": str,
     "rods": {"ROD_ID": [[X, Y, Z], [X, Y, Z]], ...},
     "n_localizers": [["VERTICAL_1", "DIAGONAL", "VERTICAL_2"], ...],
     "plate_names": [str, ...],        # optional, one per N-localizer
     "rod_diameter_mm": float,         # optional, a hint for detection (default 2)
     "description": str}               # optional

Internally everything is in frame-aligned RAS (frame centre at the origin; ``geometry.frame``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry.frame import frame_ras_from_leksell
from ..io.exceptions import DBSInputError
from ..io.json_documents import read_json_document

PRESET_DIR = Path(__file__).resolve().parent / "presets"
#: Preset name -> JSON file in ``presets/``.
PRESETS = {path.stem: path for path in sorted(PRESET_DIR.glob("*.json"))}

#: Tolerances of a well-formed N-localizer.
PARALLEL_TOLERANCE_DEG = 0.5
COPLANAR_TOLERANCE_MM = 0.5
MIN_WIDTH_MM = 10.0
MIN_DIAGONAL_ANGLE_DEG = 10.0
DEFAULT_ROD_DIAMETER_MM = 2.0


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@dataclass(frozen=True)
class NLocalizer:
    """One N-localizer: two parallel vertical rods and a diagonal in their plane (frame RAS mm)."""

    name: str
    vertical_1: str
    diagonal: str
    vertical_2: str
    vertical_1_ras: np.ndarray  # (2, 3) end points
    diagonal_ras: np.ndarray  # (2, 3)
    vertical_2_ras: np.ndarray  # (2, 3)

    @property
    def vertical_direction(self) -> np.ndarray:
        return _unit(self.vertical_1_ras[1] - self.vertical_1_ras[0])

    @property
    def across(self) -> np.ndarray:
        """Unit vector from the first vertical rod's axis to the second's, perpendicular to both."""
        v = self.vertical_direction
        w = self.vertical_2_ras[0] - self.vertical_1_ras[0]
        return _unit(w - (w @ v) * v)

    @property
    def width_mm(self) -> float:
        v = self.vertical_direction
        w = self.vertical_2_ras[0] - self.vertical_1_ras[0]
        return float(np.linalg.norm(w - (w @ v) * v))

    @property
    def diagonal_angle_deg(self) -> float:
        """Angle between the diagonal and the vertical rods."""
        d = _unit(self.diagonal_ras[1] - self.diagonal_ras[0])
        return math.degrees(math.acos(min(1.0, abs(float(d @ self.vertical_direction)))))

    def diagonal_point(self, fraction) -> np.ndarray:
        """Frame-RAS point of the diagonal rod where a plane crossing the N meets it, given the fraction
        ``|AB| / |AC|`` of its dots (A first vertical, B diagonal, C second vertical) — Brown's relation,
        exact for any plane because the three crossings are collinear and the verticals parallel."""
        fraction = np.asarray(fraction, dtype=float)
        start, end = self.diagonal_ras
        u_start = (start - self.vertical_1_ras[0]) @ self.across
        u_end = (end - self.vertical_1_ras[0]) @ self.across
        s = (fraction * self.width_mm - u_start) / (u_end - u_start)
        return start + s[..., None] * (end - start)

    def rods(self) -> dict:
        return {self.vertical_1: self.vertical_1_ras, self.diagonal: self.diagonal_ras,
                self.vertical_2: self.vertical_2_ras}


@dataclass(frozen=True)
class LocalizerGeometry:
    name: str
    rods: dict  # rod id -> (2, 3) end points in frame RAS
    n_localizers: tuple  # of NLocalizer
    rod_diameter_mm: float = DEFAULT_ROD_DIAMETER_MM
    source: str = ""

    def rods_leksell(self) -> dict:
        from ..geometry.frame import leksell_from_frame_ras

        return {rod: leksell_from_frame_ras(ends) for rod, ends in self.rods.items()}

    def to_dict(self) -> dict:
        """The geometry in the file format (Leksell mm)."""
        return {
            "name": self.name,
            "rods": {rod: np.round(ends, 4).tolist() for rod, ends in self.rods_leksell().items()},
            "n_localizers": [[n.vertical_1, n.diagonal, n.vertical_2] for n in self.n_localizers],
            "plate_names": [n.name for n in self.n_localizers],
            "rod_diameter_mm": self.rod_diameter_mm,
        }

    def without(self, plate_names) -> LocalizerGeometry:
        """The same localizer with the named N-plates removed (e.g. to simulate a missing plate)."""
        keep = tuple(n for n in self.n_localizers if n.name not in set(plate_names))
        rods = {rod: ends for n in keep for rod, ends in n.rods().items()}
        return LocalizerGeometry(self.name, rods, keep, self.rod_diameter_mm, self.source)


def load_localizer(name_or_path) -> LocalizerGeometry:
    """A preset by name (``leksell-g``) or a geometry JSON file; :class:`DBSInputError` (one line) when
    the file is missing or malformed."""
    text = str(name_or_path)
    if text in PRESETS:
        path = PRESETS[text]
    else:
        path = Path(text)
        if not path.is_file():
            raise DBSInputError(
                f"localizer geometry '{text}' is neither a preset ({', '.join(PRESETS)}) nor an existing JSON file"
            )
    return geometry_from_dict(read_json_document(path, "localizer geometry"), source=str(path))


def geometry_from_dict(document, source: str = "") -> LocalizerGeometry:
    where = f"localizer geometry {Path(source).name}" if source else "localizer geometry"

    def fail(reason: str):
        raise DBSInputError(f"{where}: {reason}")

    if not isinstance(document, dict):
        fail("expected a JSON object with 'name', 'rods' and 'n_localizers'")
    for key in ("name", "rods", "n_localizers"):
        if key not in document:
            fail(f"missing key '{key}'")
    name = document["name"]
    if not isinstance(name, str) or not name.strip():
        fail("'name' must be a non-empty string")
    if not isinstance(document["rods"], dict) or not document["rods"]:
        fail("'rods' must be an object of rod id -> [[X, Y, Z], [X, Y, Z]]")
    rods = {}
    for rod, ends in document["rods"].items():
        try:
            array = np.asarray(ends, dtype=float)
        except (TypeError, ValueError):
            fail(f"rod '{rod}' must be two points [[X, Y, Z], [X, Y, Z]] of numbers")
        if array.shape != (2, 3) or not np.all(np.isfinite(array)):
            fail(f"rod '{rod}' must be two points [[X, Y, Z], [X, Y, Z]] of finite numbers")
        if np.linalg.norm(array[1] - array[0]) < 1.0:
            fail(f"rod '{rod}' has (nearly) coincident end points")
        rods[str(rod)] = frame_ras_from_leksell(array)
    triples = document["n_localizers"]
    if not isinstance(triples, list) or not triples:
        fail("'n_localizers' must be a non-empty list of [VERTICAL_1, DIAGONAL, VERTICAL_2]")
    plate_names = document.get("plate_names")
    if plate_names is not None and (not isinstance(plate_names, list) or len(plate_names) != len(triples)
                                    or not all(isinstance(p, str) for p in plate_names)):
        fail("'plate_names' must be a list of strings, one per N-localizer")
    if plate_names is not None and len(set(plate_names)) != len(plate_names):
        fail("'plate_names' must be distinct")
    diameter = document.get("rod_diameter_mm", DEFAULT_ROD_DIAMETER_MM)
    if not isinstance(diameter, (int, float)) or not 0.2 <= float(diameter) <= 10.0:
        fail("'rod_diameter_mm' must be a number between 0.2 and 10")
    used: set = set()
    n_localizers = []
    for index, triple in enumerate(triples):
        if not isinstance(triple, list) or len(triple) != 3 or not all(isinstance(r, str) for r in triple):
            fail(f"N-localizer {index + 1} must be [VERTICAL_1, DIAGONAL, VERTICAL_2] rod ids")
        for rod in triple:
            if rod not in rods:
                fail(f"N-localizer {index + 1} names rod '{rod}', which 'rods' does not define")
            if rod in used:
                fail(f"rod '{rod}' is used twice in 'n_localizers'")
            used.add(rod)
        label = plate_names[index] if plate_names else f"N{index + 1}"
        n_localizer = NLocalizer(label, *triple, rods[triple[0]], rods[triple[1]], rods[triple[2]])
        _check_n_localizer(n_localizer, fail)
        n_localizers.append(n_localizer)
    unused = sorted(set(rods) - used)
    if unused:
        fail(f"rod(s) {', '.join(unused)} belong to no N-localizer")
    return LocalizerGeometry(name.strip(), rods, tuple(n_localizers), float(diameter), source)


def _check_n_localizer(n: NLocalizer, fail) -> None:
    v1 = n.vertical_direction
    v2 = _unit(n.vertical_2_ras[1] - n.vertical_2_ras[0])
    if math.degrees(math.acos(min(1.0, abs(float(v1 @ v2))))) > PARALLEL_TOLERANCE_DEG:
        fail(f"N-localizer '{n.name}': its vertical rods {n.vertical_1} and {n.vertical_2} are not parallel")
    if n.width_mm < MIN_WIDTH_MM:
        fail(f"N-localizer '{n.name}': its vertical rods are only {n.width_mm:.1f} mm apart")
    normal = _unit(np.cross(v1, n.across))
    off_plane = np.abs((n.diagonal_ras - n.vertical_1_ras[0]) @ normal)
    if np.max(off_plane) > COPLANAR_TOLERANCE_MM:
        fail(f"N-localizer '{n.name}': the diagonal {n.diagonal} is {np.max(off_plane):.1f} mm out of the "
             "plane of its vertical rods")
    d = _unit(n.diagonal_ras[1] - n.diagonal_ras[0])
    if math.degrees(math.acos(min(1.0, abs(float(d @ v1))))) < MIN_DIAGONAL_ANGLE_DEG:
        fail(f"N-localizer '{n.name}': the diagonal {n.diagonal} is (nearly) parallel to the vertical rods")
    u = (n.diagonal_ras - n.vertical_1_ras[0]) @ n.across
    if abs(u[1] - u[0]) < 0.5 * n.width_mm:
        fail(f"N-localizer '{n.name}': the diagonal {n.diagonal} does not run from one vertical rod to the other")
