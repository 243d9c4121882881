"""Segmentation of STN, RN, SN, GPi and GPe (left and right) on any MRI contrast.

Pipeline (DESIGN section 3): localization (user AC/PC/midline, or automatic registration to the
template) -> resampling of the image onto the canonical 1 mm ROI in template space -> intensity
normalisation -> 3D U-Net -> largest connected component per structure -> label map back on the
input's own grid (linear interpolation of the per-structure masks) -> volumes, centroids (RAS and
AC-PC) and quality flags.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..geometry.acpc import AcpcSpace
from ..io.exceptions import DBSInputError
from ..io.volumes import Volume
from . import labels as label_codes
from . import localization as localization_module
from . import template as template_space
from .intensity import normalize_intensity
from .model import build_model, network_input
from .quality import StructureStats, structure_quality

MANIFEST_PATH = template_space.MODELS_DIR / "manifest.json"
#: Minimum fraction of the ROI core (the nuclei with 5 mm margin) that must lie inside the field of view.
MIN_CORE_COVERAGE = 0.9

ProgressCallback = Callable[[float, str], None]


class ModelIntegrityError(RuntimeError):
    """The shipped model file does not match its manifest (corrupt or replaced)."""


def sha256_of_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DBSInputError("device 'cuda' requested but no CUDA GPU is available (use --device auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise DBSInputError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


@dataclass
class LoadedModel:
    network: torch.nn.Module
    device: torch.device
    manifest: dict


def load_model(manifest_path=MANIFEST_PATH, device: str = "auto") -> LoadedModel:
    """Load the shipped network after checking its SHA-256 against the manifest."""
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise ModelIntegrityError(f"model manifest not found: {manifest_path}")
    manifest = json.loads(manifest_path.read_text())
    weights_path = manifest_path.parent / manifest["file"]
    if not weights_path.exists():
        raise ModelIntegrityError(f"model weights not found: {weights_path}")
    actual = sha256_of_file(weights_path)
    if actual != manifest["sha256"]:
        raise ModelIntegrityError(f"model weights {weights_path.name} fail the SHA-256 check "
                                  f"(expected {manifest['sha256'][:12]}..., got {actual[:12]}...)")
    torch_device = resolve_device(device)
    network = build_model(manifest["architecture"])
    network.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    network.eval().to(torch_device)
    return LoadedModel(network, torch_device, manifest)


# --------------------------------------------------------------------------- geometry helpers
def _roi_to_input_ijk(volume: Volume, template_to_input_ras: np.ndarray) -> np.ndarray:
    """4x4 from ROI voxel (i, j, k) to input voxel (i, j, k)."""
    return np.linalg.inv(volume.ijk_to_ras) @ template_to_input_ras @ template_space.roi_ijk_to_template_ras()


def resample_to_roi(volume: Volume, template_to_input_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input intensities on the ROI grid (linear), and a mask of ROI voxels inside the field of view."""
    matrix = _roi_to_input_ijk(volume, template_to_input_ras)
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in template_space.roi_array_shape()], indexing="ij")
    ijk = np.stack([i, j, k], axis=-1) @ matrix[:3, :3].T.astype(np.float32) + matrix[:3, 3].astype(np.float32)
    coordinates = ijk[..., ::-1].transpose(3, 0, 1, 2)  # array order k, j, i
    data = volume.array.astype(np.float32, copy=False)
    roi = ndimage.map_coordinates(data, coordinates, order=1, mode="constant", cval=0.0, prefilter=False)
    limits = np.array(volume.array.shape, dtype=np.float32).reshape(3, 1, 1, 1) - 0.5
    inside = np.all((coordinates >= -0.5) & (coordinates <= limits), axis=0)
    return roi, inside


def roi_core_mask() -> np.ndarray:
    """ROI voxels near the template's nuclei (bounding box of the structures + 5 mm), for FOV checks."""
    shape = template_space.roi_array_shape()
    core = np.zeros(shape, dtype=bool)
    # structures span x in [-28, 28], y in [-27, 10], z in [-21, 7] mm (template RAS, CIT168 labels)
    low = np.array([-33.0, -32.0, -26.0]) - template_space.ROI_ORIGIN_TEMPLATE_RAS
    high = np.array([33.0, 15.0, 12.0]) - template_space.ROI_ORIGIN_TEMPLATE_RAS
    low = np.clip(np.round(low).astype(int), 0, None)
    high = np.minimum(np.round(high).astype(int), template_space.ROI_SHAPE_IJK)
    core[low[2]:high[2], low[1]:high[1], low[0]:high[0]] = True
    return core


def keep_largest_components(labels_roi: np.ndarray) -> np.ndarray:
    """Per structure, keep only its largest 26-connected component."""
    cleaned = np.zeros_like(labels_roi)
    structure = np.ones((3, 3, 3), dtype=bool)
    for code in range(1, label_codes.NUM_CLASSES):
        mask = labels_roi == code
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure)
        if count > 1:
            sizes = ndimage.sum(mask, components, index=np.arange(1, count + 1))
            mask = components == (int(np.argmax(sizes)) + 1)
        cleaned[mask] = code
    return cleaned


def roi_labels_to_input(labels_roi: np.ndarray, volume: Volume, template_to_input_ras: np.ndarray) -> np.ndarray:
    """ROI label map onto the input grid: linear interpolation of each structure's mask, then argmax."""
    output = np.zeros(volume.array.shape, dtype=np.uint8)
    roi_to_input = _roi_to_input_ijk(volume, template_to_input_ras)
    corners = np.array([[a, b, c] for a in (-1, template_space.ROI_SHAPE_IJK[0])
                        for b in (-1, template_space.ROI_SHAPE_IJK[1]) for c in (-1, template_space.ROI_SHAPE_IJK[2])],
                       dtype=float)
    corners_input = corners @ roi_to_input[:3, :3].T + roi_to_input[:3, 3]
    low = np.maximum(np.floor(corners_input.min(0)).astype(int), 0)
    high = np.minimum(np.ceil(corners_input.max(0)).astype(int) + 1, np.array(volume.shape_ijk))
    if np.any(high <= low):
        return output
    input_to_roi = np.linalg.inv(roi_to_input)
    axes = [np.arange(low[a], high[a], dtype=np.float32) for a in (2, 1, 0)]
    k, j, i = np.meshgrid(*axes, indexing="ij")
    ijk_roi = np.stack([i, j, k], axis=-1) @ input_to_roi[:3, :3].T.astype(np.float32) + input_to_roi[:3, 3].astype(np.float32)
    size = np.array(template_space.ROI_SHAPE_IJK, dtype=np.float32)
    grid = torch.from_numpy(2.0 * ijk_roi / (size - 1) - 1.0)[None]
    one_hot = F.one_hot(torch.from_numpy(labels_roi.astype(np.int64)), label_codes.NUM_CLASSES)
    one_hot = one_hot.permute(3, 0, 1, 2)[None].float()
    with torch.no_grad():
        sampled = F.grid_sample(one_hot, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    output[low[2]:high[2], low[1]:high[1], low[0]:high[0]] = sampled.argmax(0).numpy().astype(np.uint8)
    return output


# --------------------------------------------------------------------------- results
@dataclass
class SegmentationResult:
    labels: Volume
    localization: localization_module.Localization
    structures: list[StructureStats]
    timings_s: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)

    @property
    def adequate(self) -> bool:
        return all(not s.flags for s in self.structures)

    def to_dict(self) -> dict:
        return {"label_table": label_codes.label_table(),
                "structures": [s.to_dict() for s in self.structures],
                "adequate": self.adequate,
                "localization": self.localization.to_dict(),
                "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
                "model": self.model}


def predict_roi(model: LoadedModel, image: torch.Tensor, in_channels: int, mirror: bool = True) -> np.ndarray:
    """ROI label map from the network. With ``mirror`` the left-right flipped ROI is segmented too
    (the network was trained with that flip and swapped side codes) and the two probability maps
    are averaged, which evens out side-specific errors."""
    with torch.no_grad():
        probabilities = torch.softmax(model.network(network_input(image, in_channels).to(model.device)), dim=1)
        if mirror:
            flipped = torch.flip(image, dims=[2])
            flipped_probabilities = torch.softmax(
                model.network(network_input(flipped, in_channels).to(model.device)), dim=1)
            swap_sides = torch.from_numpy(label_codes.mirror_lookup()).to(model.device)
            probabilities = 0.5 * (probabilities + torch.flip(flipped_probabilities, dims=[4])[:, swap_sides])
    return probabilities.argmax(1)[0].cpu().numpy().astype(np.uint8)


def _no_progress(fraction: float, message: str) -> None:
    pass


def segment(volume: Volume, model: LoadedModel, ac_ras=None, pc_ras=None, midline_ras=None,
            progress: ProgressCallback = _no_progress, mirror: bool = True) -> SegmentationResult:
    """Segment the ten structures; labels come back on the input's own grid. ``mirror``: average with
    the left-right flipped ROI (see :func:`predict_roi`)."""
    timings = {}
    started = time.perf_counter()
    localization_module.check_image_content(volume)
    given = [p is not None for p in (ac_ras, pc_ras, midline_ras)]
    if any(given) and not all(given):
        raise DBSInputError("give all three of AC, PC and the midline point, or none (automatic localization)")
    progress(0.10, "localizing")
    if all(given):
        located = localization_module.from_user_landmarks(ac_ras, pc_ras, midline_ras)
    else:
        located = localization_module.register_to_template(volume)
    timings["localization"] = time.perf_counter() - started

    progress(0.40, "resampling")
    step = time.perf_counter()
    roi, inside = resample_to_roi(volume, located.template_to_input_ras)
    core = roi_core_mask()
    coverage = float(inside[core].mean())
    if coverage < MIN_CORE_COVERAGE:
        raise DBSInputError(f"the field of view misses the basal ganglia: only {100 * coverage:.0f}% of the region "
                            "around STN, RN, SN, GPi and GPe lies inside the image")
    core_values = roi[core]
    if np.percentile(core_values, 99) - np.percentile(core_values, 1) <= 1e-6 * max(1.0, abs(core_values).max()):
        raise DBSInputError("no brain found: the image is flat where the basal ganglia should be")
    timings["resampling"] = time.perf_counter() - step

    progress(0.55, "segmenting")
    step = time.perf_counter()
    image = normalize_intensity(torch.from_numpy(roi))
    in_channels = model.manifest["architecture"].get("in_channels", 1)
    labels_roi = predict_roi(model, image, in_channels, mirror)
    timings["network"] = time.perf_counter() - step

    progress(0.80, "post-processing")
    step = time.perf_counter()
    labels_roi = keep_largest_components(labels_roi)
    labels = volume.with_array(roi_labels_to_input(labels_roi, volume, located.template_to_input_ras))
    acpc = AcpcSpace.from_landmarks(located.ac_ras, located.pc_ras, located.midline_ras)
    stats = structure_quality(labels, acpc)
    timings["postprocessing"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - started
    model_info = {key: model.manifest.get(key) for key in ("name", "version", "sha256")}
    model_info["device"] = str(model.device)
    return SegmentationResult(labels, located, stats, timings, model_info)
