"""Segmentation of STN, RN, SN, GPi and GPe (left and right) on any MRI contrast: a generative,
contrast-adaptive engine (docs/segmentation.md).

Pipeline (DESIGN section 3): localization (user AC/PC/midline, or automatic affine registration to the
template) -> the image resampled onto the canonical 1 mm ROI in template space -> the generative model
fitted to it (generative.py: atlas priors of priors.py deformed onto the image, a Gaussian intensity
model per class estimated from the image, posteriors) -> divergence guard (folding, a structure leaving
its plausible region, a collapse against the prior: the atlas through the affine instead, flagged
``fallback_atlas``) -> posteriors interpolated onto the input's own grid: label = arg-max, uncertainty
= 1 - max posterior -> largest connected component per structure -> volumes, centroids (RAS and
AC-PC), confidence and quality flags (``uncertain`` when the confidence is low).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from .generative import Fit, fit_case
from .priors import (  # noqa: F401
    MANIFEST_PATH,
    AtlasPrior,
    ModelIntegrityError,
    load_prior,
    sha256_of_file,
)
from .quality import StructureStats, structure_quality

#: Minimum fraction of the ROI core (the nuclei with 5 mm margin) that must lie inside the field of view.
MIN_CORE_COVERAGE = 0.9
#: Divergence guard (per structure, ROI labels): the engine's structure is replaced by the atlas's when its
#: centroid is further than this from the atlas's (through the localization) ...
FALLBACK_CENTROID_MM = 5.0
#: ... or its Dice with the atlas's falls below this.
FALLBACK_DICE = 0.3
#: The whole case falls back to the atlas when the deformation folds (Jacobian determinant at or below this)
#: or the affine stage scales the priors by more than this factor (volume) either way.
FALLBACK_MIN_JACOBIAN = 0.0
FALLBACK_AFFINE_VOLUME_RATIO = 1.5
FALLBACK_AFFINE_SHIFT_MM = 12.0
#: A structure whose confidence (mean max-posterior over its voxels) is below this is flagged ``uncertain``
#: (calibrated on the benchmark's 330 structure-cases, docs/segmentation.md: with the decision margin, in the
#: latest run the 7 below 0.775 had mean Dice 0.68, those above 0.81; the real head's T1 STNs, 0.76, are
#: flagged: their contrast on T1 is faint).
UNCERTAIN_CONFIDENCE = 0.775
#: Below this many nats per voxel, the atlas's layout explains the image no better than chance
#: (``generative.atlas_information_nats``): the atlas lies elsewhere than the anatomy, so the localization
#: failed and every label would be misplaced: the case is refused (exit 2) rather than labelled. Measured
#: (docs/segmentation.md): 0.03 for the benchmark's QSM case whose localization failed (labels 36-45 mm off),
#: 0.37-1.02 for its 33 correctly localized cases, 0.60 for the real head. Necessary, not sufficient: a
#: localization 9 mm off can still pass (docs/segmentation.md, step 6).
MIN_ATLAS_INFORMATION_NATS = 0.2

ProgressCallback = Callable[[float, str], None]


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
    """The engine's model: the atlas priors (checked against their manifest) and the torch device."""

    prior: AtlasPrior
    device: torch.device
    manifest: dict


def load_model(manifest_path=MANIFEST_PATH, device: str = "auto") -> LoadedModel:
    """Load the engine's atlas priors after checking their SHA-256 against the manifest."""
    prior = load_prior(manifest_path)
    return LoadedModel(prior, resolve_device(device), prior.manifest)


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


def keep_largest_components(labels: np.ndarray) -> np.ndarray:
    """Per structure, keep only its largest 26-connected component (the rest becomes background)."""
    cleaned = np.zeros_like(labels)
    structure = np.ones((3, 3, 3), dtype=bool)
    for code in range(1, label_codes.NUM_CLASSES):
        mask = labels == code
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure)
        if count > 1:
            sizes = ndimage.sum(mask, components, index=np.arange(1, count + 1))
            mask = components == (int(np.argmax(sizes)) + 1)
        cleaned[mask] = code
    return cleaned


def posterior_to_input(posterior_roi: np.ndarray, volume: Volume, template_to_input_ras: np.ndarray,
                       device: torch.device | None = None,
                       structure_log_odds_margin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ROI posteriors (11, k, j, i) onto the input grid: linear interpolation of each label's posterior,
    label = arg-max, uncertainty = 1 - max posterior (0 outside the ROI, where the label is background).

    ``structure_log_odds_margin`` (11,): a voxel gets label l only where l's posterior exceeds the others' by
    that many nats more (0 for background). Partial-volume voxels on a nucleus's boundary lean towards it,
    so the plain arg-max makes the nuclei too large (docs/segmentation.md, "decision margin"); the
    uncertainty stays 1 - the unshifted maximum."""
    device = device or torch.device("cpu")
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    uncertainty = np.zeros(volume.array.shape, dtype=np.float32)
    roi_to_input = _roi_to_input_ijk(volume, template_to_input_ras)
    corners = np.array([[a, b, c] for a in (-1, template_space.ROI_SHAPE_IJK[0])
                        for b in (-1, template_space.ROI_SHAPE_IJK[1]) for c in (-1, template_space.ROI_SHAPE_IJK[2])],
                       dtype=float)
    corners_input = corners @ roi_to_input[:3, :3].T + roi_to_input[:3, 3]
    low = np.maximum(np.floor(corners_input.min(0)).astype(int), 0)
    high = np.minimum(np.ceil(corners_input.max(0)).astype(int) + 1, np.array(volume.shape_ijk))
    if np.any(high <= low):
        return labels, uncertainty
    input_to_roi = np.linalg.inv(roi_to_input)
    axes = [torch.arange(low[a], high[a], dtype=torch.float32, device=device) for a in (2, 1, 0)]
    k, j, i = torch.meshgrid(*axes, indexing="ij")
    matrix = torch.from_numpy(input_to_roi.astype(np.float32)).to(device)
    ijk_roi = torch.stack([i, j, k], dim=-1) @ matrix[:3, :3].T + matrix[:3, 3]
    size = torch.tensor(template_space.ROI_SHAPE_IJK, dtype=torch.float32, device=device)
    grid = (2.0 * ijk_roi / (size - 1) - 1.0)[None]
    posterior = torch.from_numpy(np.ascontiguousarray(posterior_roi, dtype=np.float32)).to(device)[None]
    with torch.no_grad():
        sampled = F.grid_sample(posterior, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        sampled[0] += torch.clamp(1.0 - sampled.sum(0), min=0.0)  # outside the ROI: background
        best = sampled.max(0).values
        decision = sampled
        if structure_log_odds_margin is not None:
            margin = torch.from_numpy(np.asarray(structure_log_odds_margin, dtype=np.float32)).to(device)
            decision = sampled * torch.exp(-margin).reshape(-1, 1, 1, 1)
        index = decision.argmax(0)
    box = (slice(low[2], high[2]), slice(low[1], high[1]), slice(low[0], high[0]))
    labels[box] = index.cpu().numpy().astype(np.uint8)
    uncertainty[box] = (1.0 - best).clamp(0.0, 1.0).cpu().numpy()
    return labels, uncertainty


# --------------------------------------------------------------------------- divergence guard
def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


def divergence_guard(fit: Fit) -> tuple[np.ndarray, dict]:
    """The posteriors to use and the reasons for any fallback: ``{"case": reason}`` for the whole case,
    ``{name: reason}`` per structure. The whole case falls back to the atlas through the localization when
    the deformation folds or the affine stage changes the volume implausibly or moves the ROI by more than
    FALLBACK_AFFINE_SHIFT_MM; a structure falls back to the atlas through the engine's affine stage (its
    region and posteriors there) when its arg-max region is empty, its centroid moved more than
    FALLBACK_CENTROID_MM from that atlas's, or its Dice with it fell below FALLBACK_DICE (ROI grid, 1 mm)."""
    affine_ratio = float(abs(np.linalg.det(fit.affine[:, :3])))
    if fit.min_jacobian <= FALLBACK_MIN_JACOBIAN:
        return fit.prior.copy(), {"case": f"deformation folds (min Jacobian determinant {fit.min_jacobian:.2f})"}
    if not 1 / FALLBACK_AFFINE_VOLUME_RATIO <= affine_ratio <= FALLBACK_AFFINE_VOLUME_RATIO:
        return fit.prior.copy(), {"case": f"affine stage scales the volume by {affine_ratio:.2f}"}
    half_extent_mm = (np.array(template_space.ROI_SHAPE_IJK) - 1) / 2 * template_space.ROI_SPACING_MM
    affine_shift = float(np.linalg.norm(fit.affine[:, 3] * half_extent_mm))
    if affine_shift > FALLBACK_AFFINE_SHIFT_MM:
        return fit.prior.copy(), {"case": f"affine stage moves the region by {affine_shift:.1f} mm"}
    posterior = fit.posterior.copy()
    reference = fit.affine_prior if fit.affine_prior is not None else fit.prior
    engine_labels = posterior.argmax(0)
    atlas_labels = reference.argmax(0)
    reasons = {}
    for structure in label_codes.STRUCTURES:
        mine, atlas = engine_labels == structure.code, atlas_labels == structure.code
        reason = None
        if not mine.any():
            reason = "missing after fitting" if atlas.any() else None
        elif atlas.any():
            moved = float(np.linalg.norm(_centroid(mine) - _centroid(atlas)) * template_space.ROI_SPACING_MM)
            overlap = 2.0 * np.count_nonzero(mine & atlas) / (np.count_nonzero(mine) + np.count_nonzero(atlas))
            if moved > FALLBACK_CENTROID_MM:
                reason = f"centroid moved {moved:.1f} mm from the atlas"
            elif overlap < FALLBACK_DICE:
                reason = f"Dice with the atlas {overlap:.2f}"
        if reason:
            reasons[structure.name] = reason
            # the atlas's own region and posteriors for this structure, nowhere else
            posterior[structure.code] = 0.0
            posterior[:, atlas] = reference[:, atlas]
    return posterior / np.maximum(posterior.sum(0, keepdims=True), 1e-6), reasons


def _decision_margins(fallback: dict, parameters: dict) -> np.ndarray | None:
    """Per output label, the log-odds margin of the final decision (posterior_to_input): the engine's
    ``structure_log_odds_margin`` for the structures it fitted; 0 for background and for any structure that
    fell back to the atlas, whose region stays the atlas's own."""
    if "case" in fallback:
        return None
    margin = np.full(label_codes.NUM_CLASSES, float(parameters.get("structure_log_odds_margin", 0.0)))
    margin[0] = 0.0
    for structure in label_codes.STRUCTURES:
        if structure.name in fallback:
            margin[structure.code] = 0.0
    return margin


# --------------------------------------------------------------------------- results
@dataclass
class SegmentationResult:
    labels: Volume
    localization: localization_module.Localization
    structures: list[StructureStats]
    timings_s: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    uncertainty: Volume | None = None
    fallback: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)

    @property
    def adequate(self) -> bool:
        return all(not s.flags for s in self.structures)

    def to_dict(self) -> dict:
        return {"label_table": label_codes.label_table(),
                "structures": [s.to_dict() for s in self.structures],
                "adequate": self.adequate,
                "fallback_atlas": self.fallback,
                "localization": self.localization.to_dict(),
                "fit": self.fit,
                "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
                "model": self.model}


def _no_progress(fraction: float, message: str) -> None:
    pass


def check_atlas_matches_image(fit: Fit, user_landmarks: bool) -> None:
    """Refuse a case whose image the placed atlas does not explain (a failed localization): a label map
    36-45 mm off with ordinary confidences would otherwise be written without a word."""
    information = fit.atlas_information_nats
    if information >= MIN_ATLAS_INFORMATION_NATS:
        return
    measured = f"{information:.2f} nats per voxel, at least {MIN_ATLAS_INFORMATION_NATS} expected"
    if user_landmarks:
        raise DBSInputError(f"the anatomy around the given AC, PC and midline point does not match the atlas "
                            f"({measured}): check the landmarks")
    raise DBSInputError(f"the automatic localization failed: the atlas does not match the image ({measured}); "
                        "give AC, PC and the midline point (--ac/--pc/--midline)")


def segment(volume: Volume, model: LoadedModel, ac_ras=None, pc_ras=None, midline_ras=None,
            progress: ProgressCallback = _no_progress, deform: bool = True, parameters: dict | None = None,
            localization: localization_module.Localization | None = None) -> SegmentationResult:
    """Segment the ten structures; labels and uncertainty come back on the input's own grid.
    ``deform`` False: the atlas through the localization only (the baseline the engine must beat);
    ``parameters`` override the manifest's engine parameters; ``localization`` reuses an earlier one."""
    timings = {}
    started = time.perf_counter()
    localization_module.check_image_content(volume)
    given = [p is not None for p in (ac_ras, pc_ras, midline_ras)]
    if any(given) and not all(given):
        raise DBSInputError("give all three of AC, PC and the midline point, or none (automatic localization)")
    progress(0.10, "localizing")
    if localization is not None:
        located = localization
    elif all(given):
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
    fit = fit_case(roi, inside, model.prior, model.device, parameters, deform=deform)
    if deform:
        check_atlas_matches_image(fit, user_landmarks=localization is None and all(given))
        posterior, fallback = divergence_guard(fit)
    else:
        posterior, fallback = fit.prior.copy(), {"case": "deformation disabled (atlas through the localization)"}
    timings["fit"] = time.perf_counter() - step

    progress(0.80, "post-processing")
    step = time.perf_counter()
    margin = _decision_margins(fallback, {**model.manifest["parameters"], **(parameters or {})}) if deform else None
    label_array, uncertainty_array = posterior_to_input(posterior, volume, located.template_to_input_ras, model.device,
                                                        margin)
    label_array = keep_largest_components(label_array)
    labels = volume.with_array(label_array)
    acpc = AcpcSpace.from_landmarks(located.ac_ras, located.pc_ras, located.midline_ras)
    stats = structure_quality(labels, acpc)
    for s in stats:
        mask = label_array == s.code
        s.confidence = round(float(1.0 - uncertainty_array[mask].mean()), 3) if mask.any() else None
        if s.confidence is not None and s.confidence < UNCERTAIN_CONFIDENCE:
            s.flags.append("uncertain")
        if "case" in fallback or s.name in fallback:
            s.flags.append("fallback_atlas")
    timings["postprocessing"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - started
    model_info = {key: model.manifest.get(key) for key in ("name", "version", "sha256")}
    model_info["device"] = str(model.device)
    fit_info = {"min_jacobian": round(fit.min_jacobian, 3), "max_displacement_mm": round(fit.max_displacement_mm, 2),
                "affine": np.round(fit.affine, 4).tolist(), "seconds": round(fit.seconds, 2), "log": fit.log,
                "atlas_information_nats": round(fit.atlas_information_nats, 4)}
    return SegmentationResult(labels, located, stats, timings, model_info,
                              volume.with_array(uncertainty_array), fallback, fit_info)
