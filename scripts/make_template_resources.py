"""Derive template resources in Resources/Template/ from the CIT168 atlas in ../shared/data/cit168.

    .venv/bin/python scripts/make_template_resources.py

Writes:
* ``cit168_structures_1mm_roi.nii.gz``: the ten structures in our label codes (labels.py), 1 mm, the
  CIT168 grid cropped to template RAS [-48, 48] x [-48, 32] x [-40, 24] mm (the network's atlas
  prior, template.roi_prior). Rebuilding it reproduces the shipped file voxel for voxel.
* ``cit168_caudate_1mm.nii.gz``: the caudate (CIT168 2 = left, 102 = right; value 1 left, 2 right),
  cropped to its bounding box + 3 mm. Planning uses it, through the localization's template-to-image
  map, to warn when a trajectory crosses the caudate (an atlas estimate: the caudate is not segmented).

CIT168: Pauli, Nili & Tyszka 2018, Scientific Data 5:180063, CC BY 4.0 (see ATTRIBUTION.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from DBSSegmentationLogic.io.volumes import Volume, read_volume, write_volume  # noqa: E402
from DBSSegmentationLogic.segmentation import template  # noqa: E402
from DBSSegmentationLogic.segmentation.labels import cit168_to_ours  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cit168"
STRUCTURES_BOX_RAS = (np.array([-48.0, -48.0, -40.0]), np.array([48.0, 32.0, 24.0]))
CAUDATE_CODES = {2: 1, 102: 2}
CAUDATE_MARGIN_MM = 3.0


def crop(volume: Volume, low_ras, high_ras) -> Volume:
    """The voxels of an axis-aligned volume whose centres lie in [low_ras, high_ras]."""
    to_ijk = np.linalg.inv(volume.ijk_to_ras)
    low = np.rint(low_ras @ to_ijk[:3, :3].T + to_ijk[:3, 3]).astype(int)
    high = np.rint(high_ras @ to_ijk[:3, :3].T + to_ijk[:3, 3]).astype(int)
    low, high = np.maximum(np.minimum(low, high), 0), np.minimum(np.maximum(low, high) + 1, volume.shape_ijk)
    shift = np.eye(4)
    shift[:3, 3] = low
    array = volume.array[low[2]:high[2], low[1]:high[1], low[0]:high[0]]
    return Volume(np.ascontiguousarray(array), volume.ijk_to_ras @ shift)


def main() -> int:
    cit = read_volume(DATA / "cit168_labels.nii.gz")
    ours = cit.with_array(cit168_to_ours(cit.array))
    write_volume(crop(ours, *STRUCTURES_BOX_RAS), template.SHIPPED_STRUCTURES)
    caudate = np.zeros(cit.array.shape, dtype=np.uint8)
    for cit_code, value in CAUDATE_CODES.items():
        caudate[cit.array == cit_code] = value
    kji = np.argwhere(caudate > 0)
    corners = cit.ijk_to_ras_points(np.array([kji.min(0), kji.max(0)])[:, ::-1])
    low, high = corners.min(0) - CAUDATE_MARGIN_MM, corners.max(0) + CAUDATE_MARGIN_MM
    write_volume(crop(cit.with_array(caudate), low, high), template.SHIPPED_CAUDATE)
    print(f"wrote {template.SHIPPED_STRUCTURES} and {template.SHIPPED_CAUDATE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
