"""Synthetic post-operative head CT with DBS leads, in Hounsfield units, with a known ground truth.

A head-like phantom (air, skin, skull, brain, CSF ventricles) on a grid of chosen in-plane spacing
and slice thickness, with one or more leads: a metal core whose ring contacts are brighter than the
lead body, partial volume (the lead is drawn on a 3x finer grid and averaged), blooming (Gaussian
spread of the metal signal), streaks (angular bands radiating from each lead in its axial slices)
and noise. The slice thickness is simulated by averaging along the slice axis.

Everything is generated in "phantom space" (RAS mm, head centred at the origin) and placed in the
scanner through ``pose`` (4x4 RAS matrix), so tests know the exact tip, axis and contact centres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..io.volumes import Volume
from ..postop.leads import DEFAULT_LEAD, LEAD_MODELS

AIR_HU, SKIN_HU, SKULL_HU, BRAIN_HU, CSF_HU = -1000.0, 40.0, 1200.0, 35.0, 8.0
#: Metal attenuation before blurring: far above the scanner's range, so the artefact saturates at
#: ``CT_MAX_HU`` (a 12-bit CT) and blooms to several millimetres, as real leads do.
LEAD_BODY_HU, CONTACT_HU = 5000.0, 9000.0
CT_MAX_HU = 3071.0
#: Semi-axes (R, A, S) of the head's outer surface, mm; skin 4 mm, skull 6 mm thick.
HEAD_SEMI_AXES_MM = np.array([72.0, 92.0, 80.0])
SKIN_MM, SKULL_MM = 4.0, 6.0


@dataclass
class LeadTruth:
    side: str
    tip_ras: np.ndarray
    direction_ras: np.ndarray  # unit vector from the tip up the lead (towards the entry)
    contact_centres_ras: np.ndarray
    model: str


@dataclass
class SyntheticCT:
    volume: Volume
    leads: list = field(default_factory=list)
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))


def _grid_points_phantom(shape_kji, ijk_to_phantom: np.ndarray) -> np.ndarray:
    k, j, i = np.indices(shape_kji, dtype=np.float32)
    ijk = np.stack([i, j, k], axis=-1)
    return ijk @ ijk_to_phantom[:3, :3].T.astype(np.float32) + ijk_to_phantom[:3, 3].astype(np.float32)


AIR, SKIN, SKULL, BRAIN, CSF = range(5)
#: Intensity of each tissue class: CT in HU, and a T1-like MRI (arbitrary units).
CT_TISSUE_VALUES = np.array([AIR_HU, SKIN_HU, SKULL_HU, BRAIN_HU, CSF_HU], np.float32)
MRI_TISSUE_VALUES = np.array([0.0, 140.0, 15.0, 100.0, 30.0], np.float32)


def _head_tissues(points: np.ndarray) -> np.ndarray:
    """Tissue class of each phantom point: air, skin, skull, brain or CSF (lateral ventricles)."""
    radius = np.sqrt(((points / HEAD_SEMI_AXES_MM.astype(np.float32)) ** 2).sum(-1))  # 1 on the outer surface
    mean_axis = float(HEAD_SEMI_AXES_MM.mean())
    tissues = np.full(points.shape[:-1], AIR, np.uint8)
    tissues[radius <= 1.0] = SKIN
    tissues[radius <= 1.0 - SKIN_MM / mean_axis] = SKULL
    tissues[radius <= 1.0 - (SKIN_MM + SKULL_MM) / mean_axis] = BRAIN
    for centre in ((-8.0, 2.0, 12.0), (8.0, 2.0, 12.0)):  # lateral ventricles
        inside = (((points - np.array(centre, np.float32)) / np.array([5.0, 22.0, 8.0], np.float32)) ** 2).sum(-1) <= 1
        tissues[inside] = CSF
    return tissues


def _head_phantom(points: np.ndarray) -> np.ndarray:
    return CT_TISSUE_VALUES[_head_tissues(points)]


def make_phantom_mri(spacing_mm: float = 1.0, field_of_view_mm=(150.0, 180.0, 160.0), noise: float = 3.0,
                     seed: int = 0) -> Volume:
    """A T1-like MRI of the same phantom head, in phantom space (for fusion tests and the demo)."""
    shape_ijk = np.round(np.array(field_of_view_mm) / spacing_mm).astype(int)
    ijk_to_phantom = np.eye(4)
    ijk_to_phantom[:3, :3] = np.eye(3) * spacing_mm
    ijk_to_phantom[:3, 3] = -np.array(field_of_view_mm) / 2 + spacing_mm / 2
    points = _grid_points_phantom(tuple(shape_ijk[::-1]), ijk_to_phantom)
    image = ndimage.gaussian_filter(MRI_TISSUE_VALUES[_head_tissues(points)], 0.7)
    image += np.random.default_rng(seed).normal(0.0, noise, image.shape).astype(np.float32)
    return Volume(np.clip(image, 0, None).astype(np.float32), ijk_to_phantom)


def lead_intensity(points: np.ndarray, tip: np.ndarray, direction: np.ndarray, model_name: str, length_mm: float) -> np.ndarray:
    """Metal intensity of one lead (HU above tissue) at phantom points, without blur."""
    model = LEAD_MODELS[model_name]
    relative = points - tip.astype(np.float32)
    along = relative @ direction.astype(np.float32)
    radial = np.linalg.norm(relative - along[..., None] * direction.astype(np.float32), axis=-1)
    core = (radial <= model.diameter_mm / 2) & (along >= 0) & (along <= length_mm)
    value = np.where(core, LEAD_BODY_HU, 0.0).astype(np.float32)
    for centre in model.contact_centres_from_tip_mm():
        contact = core & (np.abs(along - centre) <= model.contact_length_mm / 2)
        value[contact] = CONTACT_HU
    return value


def make_postop_ct(
    leads: list,
    spacing_mm: float = 0.5,
    slice_thickness_mm: float = 1.0,
    field_of_view_mm=(150.0, 150.0, 110.0),
    pose: np.ndarray | None = None,
    noise_hu: float = 12.0,
    blooming_mm: float = 0.6,
    streak_hu: float = 250.0,
    seed: int = 0,
) -> SyntheticCT:
    """A post-operative CT. ``leads``: dicts with ``side``, ``tip`` and ``entry`` (phantom RAS mm) and
    optionally ``model`` (default Medtronic 3389). The grid covers ``field_of_view_mm`` around the
    head centre, axial slices ``slice_thickness_mm`` apart, in-plane ``spacing_mm``."""
    rng = np.random.default_rng(seed)
    pose = np.eye(4) if pose is None else np.asarray(pose, float)
    shape_ijk = np.round(np.array(field_of_view_mm) / [spacing_mm, spacing_mm, slice_thickness_mm]).astype(int)
    # The image is simulated on a fine grid (in-plane spacing in all three axes) then averaged over
    # each slice's thickness, as a CT reconstruction does.
    fine_factor = max(1, int(round(slice_thickness_mm / spacing_mm)))
    fine_spacing_z = slice_thickness_mm / fine_factor
    fine_shape_kji = (shape_ijk[2] * fine_factor, shape_ijk[1], shape_ijk[0])
    fine_to_phantom = np.eye(4)
    fine_to_phantom[:3, :3] = np.diag([spacing_mm, spacing_mm, fine_spacing_z])
    fine_to_phantom[:3, 3] = -np.array(field_of_view_mm) / 2 + [spacing_mm / 2, spacing_mm / 2, fine_spacing_z / 2]
    points = _grid_points_phantom(fine_shape_kji, fine_to_phantom)
    image = _head_phantom(points)

    truths = []
    metal = np.zeros(fine_shape_kji, np.float32)
    for lead in leads:
        tip = np.asarray(lead["tip"], float)
        entry = np.asarray(lead["entry"], float)
        direction = (entry - tip) / np.linalg.norm(entry - tip)
        model = lead.get("model", DEFAULT_LEAD)
        # Partial volume: average the lead over a 3x3x3 sub-voxel pattern.
        offsets = np.array(np.meshgrid(*[np.array([-1, 0, 1]) / 3.0] * 3, indexing="ij")).reshape(3, -1).T
        steps = np.array([spacing_mm, spacing_mm, fine_spacing_z])
        lead_metal = np.zeros(fine_shape_kji, np.float32)
        near = np.linalg.norm(np.cross(points - tip.astype(np.float32), direction.astype(np.float32)), axis=-1) <= 3.0
        for offset in offsets:
            lead_metal[near] += lead_intensity(points[near] + (offset * steps).astype(np.float32), tip, direction,
                                                model, length_mm=200.0)
        lead_metal /= len(offsets)
        metal += lead_metal
        centres = tip + np.outer(LEAD_MODELS[model].contact_centres_from_tip_mm(), direction)
        truths.append(LeadTruth(lead["side"], tip, direction, centres, model))
        image += streaks(points, tip, direction, streak_hu, rng)
    sigma_voxels = [blooming_mm / fine_spacing_z, blooming_mm / spacing_mm, blooming_mm / spacing_mm]
    image += ndimage.gaussian_filter(metal, sigma_voxels)
    image = image.reshape(shape_ijk[2], fine_factor, shape_ijk[1], shape_ijk[0]).mean(axis=1)
    image += rng.normal(0.0, noise_hu, image.shape).astype(np.float32)
    image = np.clip(image, -1024.0, CT_MAX_HU)

    ijk_to_phantom = np.eye(4)
    ijk_to_phantom[:3, :3] = np.diag([spacing_mm, spacing_mm, slice_thickness_mm])
    ijk_to_phantom[:3, 3] = -np.array(field_of_view_mm) / 2 + np.array([spacing_mm, spacing_mm, slice_thickness_mm]) / 2
    volume = Volume(np.round(image).astype(np.int16), pose @ ijk_to_phantom)
    placed = [
        LeadTruth(t.side, pose[:3, :3] @ t.tip_ras + pose[:3, 3], pose[:3, :3] @ t.direction_ras,
                  t.contact_centres_ras @ pose[:3, :3].T + pose[:3, 3], t.model)
        for t in truths
    ]
    return SyntheticCT(volume, placed, pose)


def streaks(points: np.ndarray, tip: np.ndarray, direction: np.ndarray, amplitude_hu: float, rng) -> np.ndarray:
    """Bright and dark bands radiating from the lead in each axial plane, fading with distance."""
    if amplitude_hu <= 0:
        return np.zeros(points.shape[:-1], np.float32)
    # Lead position in each axial plane (the lead is never horizontal).
    t = (points[..., 2] - tip[2]) / direction[2]
    centre_x = tip[0] + t * direction[0]
    centre_y = tip[1] + t * direction[1]
    dx, dy = points[..., 0] - centre_x, points[..., 1] - centre_y
    angle = np.arctan2(dy, dx)
    distance = np.hypot(dx, dy)
    phase = rng.uniform(0, 2 * np.pi)
    bands = np.cos(4 * angle + phase) * amplitude_hu * np.exp(-distance / 15.0)
    return np.where(t >= -2.0, bands, 0.0).astype(np.float32)
