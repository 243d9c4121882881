"""Derive template resources in Resources/Template/ from the CIT168 atlas in ../shared/data/cit168.

    .venv/bin/python scripts/make_template_resources.py

Writes:
* ``cit168_structures_1mm_roi.nii.gz``: the ten structures in our label codes (labels.py), 1 mm, the
  CIT168 grid cropped to template RAS [-48, 48] x [-48, 32] x [-40, 24] mm (the network's atlas
  prior, template.roi_prior). Rebuilding it reproduces the shipped file voxel for voxel.
* ``Resources/Models/cit168_anatomy_roi.nii.gz`` and ``Resources/Models/manifest.json``: the anatomy of
  the generative segmentation engine (segmentation/priors.py): on the corners of the ROI grid of
  template.py widened by 8 mm on every side (1 mm, axes along template RAS; these corners are CIT168
  nodes), each voxel's class: 0 outside the brain, the
  CIT168 code (1-16 left, 101-116 right) of every CIT168 structure, or one of 4 tissue classes
  201-204 (1-D k-means of the template T1 inside the brain and outside the CIT168 structures, darkest
  first: CSF, grey matter, deep grey/white mix, white matter). The manifest holds its SHA-256, checked
  at load, and the engine's parameters.
* ``cit168_caudate_1mm.nii.gz``: the caudate (CIT168 2 = left, 102 = right; value 1 left, 2 right),
  cropped to its bounding box + 3 mm. Planning uses it, through the localization's template-to-image
  map, to warn when a trajectory crosses the caudate (an atlas estimate: the caudate is not segmented).

CIT168: Pauli, Nili & Tyszka 2018, Scientific Data 5:180063, CC BY 4.0 (see ATTRIBUTION.md).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from DBSSegmentationLogic.io.volumes import Volume, read_volume, write_volume  # noqa: E402
from DBSSegmentationLogic.segmentation import template  # noqa: E402
from DBSSegmentationLogic.segmentation.labels import cit168_to_ours  # noqa: E402
from DBSSegmentationLogic.segmentation.priors import anatomy_grid, kmeans_1d  # noqa: E402

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


#: Widening of the ROI (mm) on every side for the engine's anatomy (smoothing and deformation margin).
ANATOMY_MARGIN_MM = 8
TISSUE_CLASSES = 4


def engine_anatomy(t1: Volume, cit: Volume) -> Volume:
    """CIT168 structures + tissue classes on the widened ROI's voxel *corners*: a 1 mm grid half a voxel off
    the ROI's centres, which falls on the CIT168 grid's own nodes, so each class is copied voxel for voxel
    (no rounding). The ROI's centres lie halfway between CIT168 nodes: sampled there by nearest neighbour,
    round-half-to-even doubled some template slices and dropped others (each structure distorted by up to
    1 mm); priors.py now averages the smoothed corners onto the centres instead."""
    image = t1.array.astype(np.float32)
    brain = image > 0
    free = brain & (cit.array == 0)
    centres = kmeans_1d(image[free][::7], TISSUE_CLASSES)
    tissue = np.argmin(np.abs(image[..., None] - centres), axis=-1) + 201
    anatomy = np.where(cit.array > 0, cit.array, np.where(brain, tissue, 0)).astype(np.uint8)
    shape_ijk, grid = anatomy_grid(ANATOMY_MARGIN_MM)
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in shape_ijk[::-1]], indexing="ij")
    ras = np.stack([i, j, k], -1).reshape(-1, 3) @ grid[:3, :3].T + grid[:3, 3]
    continuous = cit.ras_to_ijk_points(ras)
    ijk = np.rint(continuous).astype(int)
    if np.abs(continuous - ijk).max() > 1e-3:
        raise SystemExit("the engine anatomy's grid does not fall on the CIT168 grid's nodes")
    inside = np.all((ijk >= 0) & (ijk < np.array(cit.shape_ijk)), axis=1)
    values = np.zeros(len(ijk), dtype=np.uint8)
    values[inside] = anatomy[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]]
    return Volume(values.reshape(tuple(shape_ijk[::-1])), grid)


def write_engine_resources(t1: Volume, cit: Volume) -> None:
    from DBSSegmentationLogic.segmentation import priors

    anatomy = engine_anatomy(t1, cit)
    write_volume(anatomy, priors.ANATOMY_PATH)
    manifest = priors.build_manifest(anatomy.array, priors.sha256_of_file(priors.ANATOMY_PATH),
                                     margin_mm=ANATOMY_MARGIN_MM)
    priors.MANIFEST_PATH.write_text(json.dumps(manifest, indent=1) + "\n")


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
    write_engine_resources(read_volume(DATA / "cit168_t1w.nii.gz"), cit)
    print(f"wrote {template.SHIPPED_STRUCTURES}, {template.SHIPPED_CAUDATE} and the engine's anatomy "
          "(Resources/Models/cit168_anatomy_roi.nii.gz, manifest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
