"""Electrode localization on a post-operative CT (DESIGN §6).

1. The CT must be a CT (air near -1000 HU and dense bone or metal above +500 HU).
2. Metal: voxels above ``metal_threshold_hu`` inside the head eroded by ``skull_margin_mm`` (so the
   skull and scalp never count), in connected pieces that are long and thin: principal-axis length
   above ``MIN_LEAD_LENGTH_MM`` and first principal spread much larger than the other two.
3. Axis: intensity-weighted principal axis of each piece (a straight line), oriented from the deep
   end towards the entry.
4. Tip and contacts: the CT is sampled along the axis and the lead model's profile (insulated tip,
   body and brighter contacts, blurred by the scanner) is fitted to it; the best shift gives the
   tip, and the model's contact spacing the contact centres.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..io.exceptions import DBSInputError
from ..io.volumes import Volume
from .leads import DEFAULT_LEAD, LEAD_MODELS

DEFAULT_METAL_THRESHOLD_HU = 800.0
DEFAULT_SKULL_MARGIN_MM = 12.0
MIN_LEAD_LENGTH_MM = 25.0
#: The first principal standard deviation must exceed the second by this factor.
MIN_ELONGATION = 6.0
PROFILE_STEP_MM = 0.05


@dataclass
class DetectedLead:
    tip_ras: list
    direction_ras: list  # unit, from the tip towards the entry
    axis_point_ras: list
    contact_centres_ras: list
    model: str
    length_in_brain_mm: float
    fit_residual: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_is_ct(volume: Volume) -> None:
    values = volume.array
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.isfinite(values)):
        raise DBSInputError("the CT holds non-numeric or non-finite values")
    low, high = np.percentile(values, [1, 99.99])
    if low > -500 or high < 500:
        raise DBSInputError(
            f"this image is not a CT in Hounsfield units: intensities span {low:.0f} to {high:.0f} "
            "(air near -1000 HU and bone above +500 HU expected)"
        )


def inner_head_mask(volume: Volume, skull_margin_mm: float) -> np.ndarray:
    """The head (above -300 HU, holes filled) eroded by ``skull_margin_mm``."""
    head = volume.array > -300
    components, count = ndimage.label(head)
    if count == 0:
        raise DBSInputError("no head found in the CT (nothing above -300 HU)")
    sizes = ndimage.sum(head, components, index=np.arange(1, count + 1))
    head = ndimage.binary_fill_holes(components == 1 + int(np.argmax(sizes)))
    # The border of the field of view counts as outside: a head cut by the field of view keeps its
    # skull out of the mask there too.
    padded = np.pad(head, 1, constant_values=False)
    depth_mm = ndimage.distance_transform_edt(padded, sampling=volume.spacing_mm[::-1])[1:-1, 1:-1, 1:-1]
    return depth_mm > skull_margin_mm


def _model_profile(offsets_mm: np.ndarray, model_name: str, body_ratio: float) -> np.ndarray:
    """Unblurred lead profile along the axis (0 before the tip, body_ratio on the body, 1 on contacts)."""
    model = LEAD_MODELS[model_name]
    profile = np.where(offsets_mm >= 0, body_ratio, 0.0)
    for centre in model.contact_centres_from_tip_mm():
        profile[np.abs(offsets_mm - centre) <= model.contact_length_mm / 2] = 1.0
    return profile


def _fit_tip(profile: np.ndarray, positions_mm: np.ndarray, model_name: str) -> tuple[float, float]:
    """Position of the tip along the sampled line (mm) by least-squares fit of the blurred model."""
    best = (np.inf, 0.0)
    design_ones = np.ones_like(profile)
    for sigma_mm in (0.4, 0.6, 0.8, 1.0, 1.3, 1.7):
        for body_ratio in (0.3, 0.45, 0.6, 0.8, 1.0):
            for tip in np.arange(positions_mm[0] + 3.0, positions_mm[0] + 12.0, 0.05):
                shape = ndimage.gaussian_filter1d(_model_profile(positions_mm - tip, model_name, body_ratio),
                                                  sigma_mm / PROFILE_STEP_MM)
                design = np.column_stack([shape, design_ones])
                coefficients, residual, *_ = np.linalg.lstsq(design, profile, rcond=None)
                error = float(residual[0]) if residual.size else float(np.sum((design @ coefficients - profile) ** 2))
                if coefficients[0] > 0 and error < best[0]:
                    best = (error, float(tip))
    return best[1], best[0] / max(float(np.sum((profile - profile.mean()) ** 2)), 1e-9)


def localize_leads(
    ct: Volume,
    metal_threshold_hu: float = DEFAULT_METAL_THRESHOLD_HU,
    skull_margin_mm: float = DEFAULT_SKULL_MARGIN_MM,
    model_name: str = DEFAULT_LEAD,
) -> list[DetectedLead]:
    """All leads found in the CT (RAS mm). Raises :class:`DBSInputError` when none is found."""
    if model_name not in LEAD_MODELS:
        raise DBSInputError(f"unknown lead model '{model_name}': use one of {', '.join(LEAD_MODELS)}")
    check_is_ct(ct)
    inner = inner_head_mask(ct, skull_margin_mm)
    metal = (ct.array > metal_threshold_hu) & inner
    components, count = ndimage.label(metal, np.ones((3, 3, 3), bool))
    leads = []
    for label in range(1, count + 1):
        kji = np.argwhere(components == label)
        if len(kji) < 10:
            continue
        points = ct.ijk_to_ras_points(kji[:, ::-1].astype(float))
        weights = ct.array[tuple(kji.T)].astype(float) - metal_threshold_hu
        centre = np.average(points, axis=0, weights=weights)
        covariance = np.cov((points - centre).T, aweights=weights)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        direction = eigenvectors[:, -1]
        along = (points - centre) @ direction
        length = float(along.max() - along.min())
        elongation = float(np.sqrt(eigenvalues[-1] / max(eigenvalues[-2], 1e-9)))
        if length < MIN_LEAD_LENGTH_MM or elongation < MIN_ELONGATION:
            continue
        if direction[2] < 0:  # from the deep end up towards the entry
            direction, along = -direction, -along
        deep_end = centre + along.min() * direction
        positions = np.arange(-8.0, 20.0, PROFILE_STEP_MM)
        samples = deep_end + positions[:, None] * direction
        ijk = ct.ras_to_ijk_points(samples)
        profile = ndimage.map_coordinates(ct.array.astype(np.float32), ijk[:, ::-1].T, order=1, mode="nearest")
        tip_offset, residual = _fit_tip(profile, positions, model_name)
        tip = deep_end + tip_offset * direction
        contacts = tip + np.outer(LEAD_MODELS[model_name].contact_centres_from_tip_mm(), direction)
        leads.append(DetectedLead(tip.tolist(), direction.tolist(), centre.tolist(), contacts.tolist(), model_name,
                                  length, residual))
    if not leads:
        raise DBSInputError(
            f"no DBS lead found in the CT: no long thin metal (> {metal_threshold_hu:.0f} HU, longer than "
            f"{MIN_LEAD_LENGTH_MM:.0f} mm) inside the skull; adjust the metal threshold or give the tip and one more "
            "point of each lead"
        )
    return leads


def lead_from_points(tip_ras, point_on_lead_ras, model_name: str = DEFAULT_LEAD) -> DetectedLead:
    """Fallback when detection fails: the user gives the tip and one more point on the lead."""
    tip = np.asarray(tip_ras, float)
    other = np.asarray(point_on_lead_ras, float)
    length = float(np.linalg.norm(other - tip))
    if length < 2.0:
        raise DBSInputError("the second point must lie at least 2 mm from the tip, on the lead")
    direction = (other - tip) / length
    contacts = tip + np.outer(LEAD_MODELS[model_name].contact_centres_from_tip_mm(), direction)
    return DetectedLead(tip.tolist(), direction.tolist(), tip.tolist(), contacts.tolist(), model_name, length, 0.0)
