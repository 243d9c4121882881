"""The CIT168 template (MNI 2009c), its landmarks and the canonical region of interest (ROI).

The ROI is a fixed 1 mm box in template RAS space that holds both GPe, SN, RN and STN with a margin
of at least 10 mm for the residual error of the localization. The network always sees the image
resampled onto this box.

CIT168: Pauli, Nili & Tyszka 2018, "A high-resolution probabilistic in vivo atlas of human subcortical
brain nuclei", Scientific Data 5:180063, CC BY 4.0.
"""
from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io.volumes import Volume, read_volume


def _resources_dir() -> Path:
    """The extension's Resources folder: $DBS_TARGETING_RESOURCES, the source checkout (Slicer module,
    editable install), or the copy a regular ``pip install`` puts under ``<prefix>/share/dbs-targeting``."""
    if os.environ.get("DBS_TARGETING_RESOURCES"):
        return Path(os.environ["DBS_TARGETING_RESOURCES"])
    checkout = Path(__file__).resolve().parents[2] / "Resources"
    installed = Path(sys.prefix) / "share" / "dbs-targeting" / "Resources"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


RESOURCES_DIR = _resources_dir()
TEMPLATE_DIR = RESOURCES_DIR / "Template"
MODELS_DIR = RESOURCES_DIR / "Models"
SHIPPED_TEMPLATE_T1 = TEMPLATE_DIR / "cit168_t1w_2mm.nii.gz"
SHIPPED_TEMPLATE_MASK = TEMPLATE_DIR / "cit168_brainmask_2mm.nii.gz"
SHIPPED_LANDMARKS = TEMPLATE_DIR / "cit168_landmarks.json"
#: CIT168 hard labels in our codes (labels.py), 1 mm, cropped to the ROI + 8 mm.
SHIPPED_STRUCTURES = TEMPLATE_DIR / "cit168_structures_1mm_roi.nii.gz"
#: CIT168 caudate (1 left, 2 right), 1 mm, for the trajectory check of planning (scripts/make_template_resources.py).
SHIPPED_CAUDATE = TEMPLATE_DIR / "cit168_caudate_1mm.nii.gz"
#: Gaussian smoothing of each structure mask for the atlas prior channels.
PRIOR_SIGMA_MM = 1.5

#: Canonical ROI: shape (i, j, k) = (x, y, z), 1 mm voxels, axes along template RAS.
ROI_SHAPE_IJK = (80, 64, 48)
ROI_SPACING_MM = 1.0
#: RAS position (template space) of the centre of ROI voxel (0, 0, 0).
ROI_ORIGIN_TEMPLATE_RAS = np.array([-39.5, -39.5, -31.5])


def roi_ijk_to_template_ras() -> np.ndarray:
    """4x4 matrix from ROI voxel index (i, j, k) to template RAS mm."""
    matrix = np.eye(4)
    matrix[:3, :3] *= ROI_SPACING_MM
    matrix[:3, 3] = ROI_ORIGIN_TEMPLATE_RAS
    return matrix


def roi_array_shape() -> tuple[int, int, int]:
    """Shape of an ROI array indexed [k, j, i]."""
    i, j, k = ROI_SHAPE_IJK
    return (k, j, i)


def roi_centre_template_ras() -> np.ndarray:
    return ROI_ORIGIN_TEMPLATE_RAS + (np.array(ROI_SHAPE_IJK) - 1) / 2 * ROI_SPACING_MM


@lru_cache(maxsize=1)
def roi_prior() -> np.ndarray:
    """Atlas prior on the ROI grid: (10, k, j, i) float32, each structure's template mask smoothed
    (Gaussian, PRIOR_SIGMA_MM) and interpolated (linear) at the ROI voxel centres. Constant input
    channels of the network: they tell it where each structure usually lies."""
    structures = read_volume(SHIPPED_STRUCTURES)
    roi_to_structures_ijk = np.linalg.inv(structures.ijk_to_ras) @ roi_ijk_to_template_ras()
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in roi_array_shape()], indexing="ij")
    ijk = np.stack([i, j, k], axis=-1) @ roi_to_structures_ijk[:3, :3].T + roi_to_structures_ijk[:3, 3]
    coordinates = ijk[..., ::-1].transpose(3, 0, 1, 2)
    sigma_vox = PRIOR_SIGMA_MM / structures.spacing_mm[::-1]
    channels = []
    for code in range(1, 11):
        smooth = ndimage.gaussian_filter((structures.array == code).astype(np.float32), sigma_vox)
        channels.append(ndimage.map_coordinates(smooth, coordinates, order=1, mode="constant", cval=0.0))
    return np.stack(channels).astype(np.float32)


def load_landmarks(path=SHIPPED_LANDMARKS) -> dict[str, np.ndarray]:
    """AC, PC and a midline point of the template in template RAS mm."""
    data = json.loads(Path(path).read_text())
    return {name: np.array(data[name]["ras_mm"], dtype=float) for name in ("ac", "pc", "midline")}


def load_shipped_template() -> tuple[Volume, Volume]:
    """The 2 mm template T1 and its brain mask shipped for localization."""
    return read_volume(SHIPPED_TEMPLATE_T1), read_volume(SHIPPED_TEMPLATE_MASK)
