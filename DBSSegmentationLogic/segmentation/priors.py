"""Atlas priors of the generative engine: where each class of tissue lies in the template-space ROI.

The shipped anatomy (``Resources/Models/cit168_anatomy_roi.nii.gz``, made by
``scripts/make_template_resources.py`` from the CIT168 atlas and template, CC BY 4.0, Pauli et al. 2018)
holds one class per voxel on the corners of the ROI grid widened by a margin (those corners are the
CIT168 grid's own nodes): 0 outside the brain, the 28 CIT168 structures (codes 1-16 left, 101-116
right), and 4 tissue classes 201-204 (k-means of the template T1: CSF, grey matter, deep grey/white
mix, white matter). The engine's prior is each class's mask smoothed with a Gaussian, averaged from the
corners onto the ROI's voxel centres, cropped to the ROI and normalised to sum to one per voxel.

Intensity groups: the left and right copy of a structure share one Gaussian (same tissue); every other
class has its own. Output labels: our codes (labels.py) per class, 0 for the classes that are not
targets (SNc+PBP+VTA and SNr both give SN).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io.volumes import read_volume
from . import labels as label_codes
from . import template as template_space

ANATOMY_PATH = template_space.MODELS_DIR / "cit168_anatomy_roi.nii.gz"
MANIFEST_PATH = template_space.MODELS_DIR / "manifest.json"
TISSUE_NAMES = {201: "csf", 202: "grey_matter", 203: "deep_grey_white", 204: "white_matter"}
CIT168_NAMES = {1: "Pu", 2: "Ca", 3: "NAC", 4: "EXA", 5: "GPe", 6: "GPi", 7: "SNc_PBP_VTA", 8: "RN", 9: "SNr",
                12: "VeP", 13: "HN", 14: "HTH", 15: "MN", 16: "STH"}

#: Engine parameters recorded in the manifest (the values measured in docs/segmentation.md).
DEFAULT_PARAMETERS = {
    "prior_sigma_mm": 0.5,
    "affine_rounds": 2, "affine_steps": 40, "affine_learning_rate": 0.005,
    "deformation_rounds": 0, "deformation_steps": 40, "deformation_learning_rate": 0.25,
    "deformation_smoothing_mm": 2.0, "deformation_regularisation": 30.0,
    "variance_floor": 1e-4, "gaussian_purity": 0.7, "structure_log_odds_margin": 0.3,
}


class ModelIntegrityError(RuntimeError):
    """A shipped resource of the engine does not match its manifest (corrupt or replaced)."""


def sha256_of_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def class_name(code: int) -> str:
    if code == 0:
        return "outside_brain"
    if code in TISSUE_NAMES:
        return TISSUE_NAMES[code]
    return f"{CIT168_NAMES[code % 100]}_{'left' if code < 100 else 'right'}"


def build_manifest(anatomy: np.ndarray, sha256: str, margin_mm: int) -> dict:
    codes = [int(c) for c in np.unique(anatomy)]
    return {"name": "dbs-generative-atlas-cit168", "version": "2",
            "file": ANATOMY_PATH.name, "sha256": sha256, "margin_mm": int(margin_mm),
            "classes": [{"code": c, "name": class_name(c)} for c in codes],
            "parameters": DEFAULT_PARAMETERS,
            "source": "CIT168 atlas and T1w template (Pauli, Nili & Tyszka 2018, Scientific Data 5:180063, "
                      "CC BY 4.0); made by scripts/make_template_resources.py"}


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """Sorted centres of a 1-D k-means (deterministic quantile start): how the template's intensities inside
    the brain and outside the structures are split into the tissue classes (made by
    scripts/make_template_resources.py; the same split serves the training generator and the benchmark)."""
    centres = np.quantile(values, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        assignment = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        centres = np.array([values[assignment == c].mean() if np.any(assignment == c) else centres[c]
                            for c in range(k)])
    return np.sort(centres)


@dataclass
class AtlasPrior:
    probabilities: np.ndarray  # (K, k, j, i) float32 on the ROI grid, summing to 1 over K
    codes: tuple  # anatomy code of each class
    groups: np.ndarray  # (K,) intensity group of each class
    output_labels: np.ndarray  # (K,) our label code of each class (0: not a target)
    manifest: dict

    @property
    def number_of_groups(self) -> int:
        return int(self.groups.max()) + 1

    def output_prior(self) -> np.ndarray:
        """(11, k, j, i): the prior summed per output label (background = every non-target class)."""
        out = np.zeros((label_codes.NUM_CLASSES,) + self.probabilities.shape[1:], dtype=np.float32)
        np.add.at(out, self.output_labels, self.probabilities)
        return out


def output_label_of(code: int) -> int:
    return int(label_codes.cit168_to_ours(np.array([code]))[0]) if 0 < code < 200 else 0


def load_manifest(manifest_path=MANIFEST_PATH) -> dict:
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise ModelIntegrityError(f"engine manifest not found: {manifest_path}")
    manifest = json.loads(manifest_path.read_text())
    anatomy_path = manifest_path.parent / manifest["file"]
    if not anatomy_path.exists():
        raise ModelIntegrityError(f"engine anatomy not found: {anatomy_path}")
    actual = sha256_of_file(anatomy_path)
    if actual != manifest["sha256"]:
        raise ModelIntegrityError(f"engine anatomy {anatomy_path.name} fails the SHA-256 check "
                                  f"(expected {manifest['sha256'][:12]}..., got {actual[:12]}...)")
    return manifest


def load_prior(manifest_path=MANIFEST_PATH) -> AtlasPrior:
    """The priors on the ROI grid, after checking the anatomy's SHA-256 against the manifest."""
    manifest = load_manifest(manifest_path)
    return _smoothed_prior(str(Path(manifest_path).parent / manifest["file"]), manifest["sha256"],
                           float(manifest["parameters"]["prior_sigma_mm"]), int(manifest["margin_mm"]),
                           json.dumps(manifest))


def anatomy_grid(margin: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid the engine's anatomy lies on: the corners of the ROI's voxels, the ROI widened by ``margin``
    voxels on every side. Returns its shape (i, j, k) and its ijk -> template RAS matrix."""
    shape_ijk = np.array(template_space.ROI_SHAPE_IJK) + 2 * margin + 1
    grid = template_space.roi_ijk_to_template_ras()
    grid[:3, 3] -= (margin + 0.5) * template_space.ROI_SPACING_MM
    return shape_ijk, grid


def corners_to_centres(channel: np.ndarray) -> np.ndarray:
    """Mean of the 2 x 2 x 2 corners of every voxel: values on a grid's voxel corners (shape n + 1) onto its
    centres (shape n), without the half-voxel shift that nearest-neighbour sampling would make."""
    for axis in range(channel.ndim):
        low = np.take(channel, np.arange(channel.shape[axis] - 1), axis=axis)
        high = np.take(channel, np.arange(1, channel.shape[axis]), axis=axis)
        channel = 0.5 * (low + high)
    return channel


@lru_cache(maxsize=2)
def _smoothed_prior(anatomy_path: str, sha256: str, sigma_mm: float, margin: int, manifest_text: str) -> AtlasPrior:
    anatomy = read_volume(anatomy_path)
    # the anatomy lies on the widened ROI's voxel corners (make_template_resources.engine_anatomy)
    expected = anatomy_grid(margin)[0][::-1]
    if tuple(anatomy.array.shape) != tuple(expected):
        raise ModelIntegrityError(f"engine anatomy has shape {anatomy.array.shape}, expected {tuple(expected)}")
    return prior_from_corner_anatomy(anatomy.array, sigma_mm, margin, json.loads(manifest_text))


def prior_from_corner_anatomy(anatomy: np.ndarray, sigma_mm: float, margin: int, manifest: dict,
                              codes: tuple | None = None) -> AtlasPrior:
    """The priors on the ROI grid from a class map on the widened ROI's voxel corners ([k, j, i], shape ROI
    + 2 margin + 1): each class's mask smoothed, averaged onto the centres, cropped, normalised. ``codes``:
    the classes to keep (default: those present)."""
    array = anatomy.astype(np.int64)
    codes = tuple(int(c) for c in np.unique(array)) if codes is None else tuple(codes)
    crop = (slice(margin, -margin),) * 3
    channels = [corners_to_centres(ndimage.gaussian_filter((array == c).astype(np.float32), sigma_mm,
                                                           truncate=3.0))[crop]
                for c in codes]
    probabilities = np.maximum(np.stack(channels), 0.0)
    probabilities /= np.maximum(probabilities.sum(0, keepdims=True), 1e-6)
    group_keys = [c % 100 if 0 < c < 200 else c for c in codes]
    ordered = sorted(set(group_keys))
    groups = np.array([ordered.index(g) for g in group_keys], dtype=np.int64)
    output_labels = np.array([output_label_of(c) for c in codes], dtype=np.int64)
    return AtlasPrior(probabilities.astype(np.float32), codes, groups, output_labels, manifest)
