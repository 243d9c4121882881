"""Rigid fusion of a post-operative CT to the planning MRI, directly or through a pre-operative CT.

The result is always ``ct_to_mri_ras``: the 4x4 matrix that takes a point in the CT's RAS (mm) to the
same anatomical point in the MRI's RAS.

CT to MRI (:func:`fuse_ct_to_mri`): Mattes mutual information, rigid (Euler) transform.

- The CT is cropped to the head and averaged down to about 1 mm; the metric sees it through a soft-tissue
  window (``MI_WINDOW_HU``: CSF, grey and white matter get most of the histogram, bone saturates).
- Metal is excluded: voxels above the metal threshold that lie deep inside the head (so the skull vault
  does not count), in pieces that reach ``METAL_PEAK_HU`` (so the skull base does not count), dilated
  by ``METAL_MARGIN_MM`` for blooming, are left out of the moving mask.
- The metric is restricted to the MRI's head (or brain, for a skull-stripped MRI) dilated by
  ``FIXED_MASK_MARGIN_MM``, so the empty background never dilutes it.
- Pyramid ``LEVELS_MM`` (4, 2, 1 mm): at 4 mm every start is optimised (the centroid of the CT's brain
  or of its head, whichever volume is closer to that of the MRI's head mask, put on the MRI's centroid,
  times ``START_ROTATIONS_DEG``); the best ``KEEP_AFTER_COARSE`` go on to 2 mm, the best of those to
  1 mm, about the MRI's own resolution (``SAMPLING_FRACTIONS`` of the voxels, random, seeded).

CT to CT (:func:`fuse_ct_to_ct`): the same pyramid with a correlation metric on a wider window
(``CT_CT_WINDOW_HU``: bone contributes), metal excluded from the moving CT.

A user-supplied ITK transform file (:func:`read_ct_to_mri_transform`) replaces the registration.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..geometry.frame import read_image_to_frame_transform
from ..io.exceptions import DBSInputError
from ..io.volumes import RAS_TO_LPS, Volume, volume_from_sitk, volume_to_sitk

DEFAULT_METAL_THRESHOLD_HU = 800.0
#: Voxels above the metal threshold at least this deep inside the head are metal, not skull.
METAL_DEPTH_MM = 12.0
#: A piece above the metal threshold is metal (not dense bone) when its brightest voxel reaches this.
METAL_PEAK_HU = 2000.0
#: Metal dilated by this much (blooming, the brightest streaks) is left out of the metric.
METAL_MARGIN_MM = 5.0
#: Soft-tissue window of the CT for mutual information with the MRI.
MI_WINDOW_HU = (-100.0, 200.0)
MI_BINS = 48
#: Window of both CTs for CT-to-CT correlation.
CT_CT_WINDOW_HU = (-200.0, 1600.0)
#: The MRI's head mask is closed by this much (CSF spaces open to the outside belong to the head).
HEAD_CLOSING_MM = 8.0
#: The MRI's head (or brain) mask is dilated by this much to give the fixed mask.
FIXED_MASK_MARGIN_MM = 4.0
#: Pyramid: voxel size of each level, coarse to fine. The last one is about the MRI's resolution.
LEVELS_MM = (4.0, 2.0, 1.0)
#: Fraction of the fixed voxels sampled at each level (those outside the fixed mask are then dropped).
SAMPLING_FRACTIONS = (1.0, 0.25, 0.04)
#: Regular-step gradient descent per level: first and smallest step (mm of voxel shift), iterations.
#: Each level starts within about a voxel of the previous level's result, hence the small first steps.
LEARNING_RATES_MM = (4.0, 1.0, 0.5)
MIN_STEPS_MM = (0.05, 0.01, 0.005)
RELAXATION = (0.6, 0.8, 0.8)
MAX_ITERATIONS = (100, 60, 60)
#: Starting rotations (degrees about R, A, S) tried at the coarsest level.
START_ROTATIONS_DEG = [(0, 0, 0)] + [tuple(angle * unit for unit in axis) for angle in (-10, 10)
                                      for axis in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
KEEP_AFTER_COARSE = 2
#: Fraction of the MRI's head voxels that must fall inside the CT's head after fusion.
MIN_OVERLAP = 0.4
#: Files: what the transform file maps. Slicer saves a transform node in ITK's resampling convention
#: (the file maps parent points to child points): for a CT placed under a transform that moves it onto
#: the MRI, that is "mri-to-ct". ITK/ANTs/BRAINSFit/elastix registrations of the CT (moving) to the
#: MRI (fixed) also write "mri-to-ct".
TRANSFORM_FILE_CONVENTIONS = ("mri-to-ct", "ct-to-mri")

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])

ProgressCallback = Optional[Callable[[float, str], None]]


@dataclass
class Fusion:
    ct_to_mri_ras: np.ndarray  # 4x4, CT RAS -> MRI RAS
    metric: float  # final metric value (lower is better; NaN for a user transform)
    overlap: float  # fraction of the MRI's head inside the CT's head after fusion
    method: str
    seconds: float

    def to_dict(self) -> dict:
        return {"method": self.method, "ct_to_mri_ras": np.asarray(self.ct_to_mri_ras).tolist(),
                "metric": None if not math.isfinite(self.metric) else float(self.metric),
                "overlap": float(self.overlap), "seconds": float(self.seconds)}


# ---------------------------------------------------------------------------------------------------
# Geometry helpers


def lps_matrix_to_ras(matrix: np.ndarray) -> np.ndarray:
    """A 4x4 point mapping in LPS to the same mapping in RAS (and back: the flip is its own inverse)."""
    return _FLIP @ np.asarray(matrix, float) @ _FLIP


def _transform_matrix_lps(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix of a linear SimpleITK transform, as a point mapping (LPS)."""
    basis = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    mapped = np.array([transform.TransformPoint(tuple(p)) for p in basis])
    matrix = np.eye(4)
    matrix[:3, :3] = (mapped[1:] - mapped[0]).T
    matrix[:3, 3] = mapped[0]
    return matrix


def transform_points(matrix: np.ndarray, points) -> np.ndarray:
    points = np.asarray(points, float)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def rotation_angle_deg(matrix: np.ndarray) -> float:
    cosine = (np.trace(np.asarray(matrix)[:3, :3]) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def crop(volume: Volume, low_ijk, high_ijk) -> Volume:
    """Sub-volume ``[low, high)`` in i, j, k (clipped to the grid), with its geometry."""
    shape = np.array(volume.shape_ijk)
    low = np.clip(np.asarray(low_ijk, int), 0, shape)
    high = np.clip(np.asarray(high_ijk, int), low + 1, shape)
    array = volume.array[low[2]:high[2], low[1]:high[1], low[0]:high[0]]
    ijk_to_ras = volume.ijk_to_ras.copy()
    ijk_to_ras[:3, 3] = volume.ijk_to_ras_points(low.astype(float))
    return Volume(array, ijk_to_ras)


# ---------------------------------------------------------------------------------------------------
# Masks


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def mri_head_mask(mri: Volume) -> np.ndarray:
    """The MRI's head (or brain, if skull-stripped): smoothed intensity above 8% of its 99th
    percentile, largest connected piece, closed by ``HEAD_CLOSING_MM`` (dark CSF spaces open to the
    outside count as inside), holes filled. On the MRI's grid."""
    values = mri.array.astype(np.float32)
    positive = values[values > 0]
    if positive.size == 0:
        raise DBSInputError("the MRI is empty (no voxel above 0)")
    high = float(np.percentile(positive[:: max(1, positive.size // 200000)], 99))
    smooth = ndimage.gaussian_filter(values, 1.0 / np.maximum(mri.spacing_mm[::-1], 1e-3))
    mask = _largest_filled(smooth > 0.08 * high)
    if not mask.any():
        raise DBSInputError("no head found in the MRI")
    dilated = ndimage.binary_fill_holes(_dilate_coarse(mask, mri.spacing_mm, HEAD_CLOSING_MM))
    # Erode back by the same distance (the grid border does not count as outside here).
    factors = _coarse_factors(mri.spacing_mm, 2.0)
    offsets = tuple(int(f // 2) for f in factors)
    coarse = dilated[offsets[0]::factors[0], offsets[1]::factors[1], offsets[2]::factors[2]]
    sampling = np.asarray(mri.spacing_mm, float)[::-1] * factors
    kept = ndimage.distance_transform_edt(coarse, sampling=sampling) > HEAD_CLOSING_MM
    return _upsample(kept, factors, mask.shape) | mask


def ct_head_mask(ct: Volume) -> np.ndarray:
    """The CT's head: above -300 HU, largest piece, holes filled."""
    mask = _largest_filled(ct.array > -300)
    if not mask.any():
        raise DBSInputError("no head found in the CT (nothing above -300 HU)")
    return mask


def _coarse_factors(spacing_ijk, coarse_mm: float) -> np.ndarray:
    return np.maximum(1, np.floor(coarse_mm / np.asarray(spacing_ijk, float) + 1e-6)).astype(int)[::-1]  # k, j, i


def _upsample(coarse: np.ndarray, factors_kji, shape_kji) -> np.ndarray:
    full = coarse
    for axis, factor in enumerate(factors_kji):
        if factor > 1:
            full = np.repeat(full, factor, axis=axis)
    missing = [(0, max(0, n - m)) for n, m in zip(shape_kji, full.shape)]
    if any(after for _, after in missing):
        full = np.pad(full, missing, mode="edge")
    return full[: shape_kji[0], : shape_kji[1], : shape_kji[2]]


def depth_inside_mm(mask: np.ndarray, spacing_ijk, coarse_mm: float = 2.0) -> np.ndarray:
    """Distance (mm) from each voxel of ``mask`` to the outside; the grid border counts as outside.
    Computed on a grid of about ``coarse_mm`` (blocks count as inside when their centre voxel is):
    accurate to that, which is all the masks below need, at a fraction of the cost."""
    factors = _coarse_factors(spacing_ijk, coarse_mm)
    offsets = tuple(int(f // 2) for f in factors)
    coarse = mask[offsets[0]::factors[0], offsets[1]::factors[1], offsets[2]::factors[2]]
    padded = np.pad(coarse, 1, constant_values=False)
    sampling = np.asarray(spacing_ijk, float)[::-1] * factors
    depth = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1].astype(np.float32)
    return _upsample(depth, factors, mask.shape)


def _dilate_coarse(mask: np.ndarray, spacing_ijk, radius_mm: float, coarse_mm: float = 2.0) -> np.ndarray:
    """``mask`` dilated by about ``radius_mm`` (to the nearest ``coarse_mm``), for large masks."""
    factors = _coarse_factors(spacing_ijk, coarse_mm)
    offsets = tuple(int(f // 2) for f in factors)
    coarse = mask[offsets[0]::factors[0], offsets[1]::factors[1], offsets[2]::factors[2]]
    sampling = np.asarray(spacing_ijk, float)[::-1] * factors
    dilated = ndimage.distance_transform_edt(~coarse, sampling=sampling) <= radius_mm
    return _upsample(dilated, factors, mask.shape) | mask


def _dilate_mm(mask: np.ndarray, spacing_ijk, radius_mm: float) -> np.ndarray:
    """``mask`` dilated by ``radius_mm``, computed only within the mask's bounding box plus the radius."""
    if radius_mm <= 0 or not mask.any():
        return mask
    spacing_kji = np.asarray(spacing_ijk, float)[::-1]
    margin = np.ceil(radius_mm / spacing_kji).astype(int) + 1
    kji = np.argwhere(mask)
    low = np.maximum(kji.min(0) - margin, 0)
    high = np.minimum(kji.max(0) + margin + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    dilated = np.zeros_like(mask)
    dilated[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing_kji) <= radius_mm
    return dilated


# ---------------------------------------------------------------------------------------------------
# Image preparation


def head_box_ijk(ct: Volume, margin_mm: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (i, j, k; high exclusive) of the CT's head, found on a strided view, plus a margin."""
    stride = np.maximum(1, np.round(2.0 / ct.spacing_mm)).astype(int)  # ~2 mm
    coarse = ct.array[::stride[2], ::stride[1], ::stride[0]] > -300
    coarse = _largest_filled(coarse)
    if not coarse.any():
        raise DBSInputError("no head found in the CT (nothing above -300 HU)")
    kji = np.argwhere(coarse)
    low = kji.min(0)[::-1] * stride
    high = (kji.max(0)[::-1] + 1) * stride
    margin = np.ceil(margin_mm / ct.spacing_mm).astype(int)
    return low - margin, high + margin


def downsample_ct(ct: Volume, target_mm: float = 1.0) -> Volume:
    """The CT cropped to the head and block-averaged to about ``target_mm`` (float32, HU)."""
    low, high = head_box_ijk(ct)
    cropped = crop(ct, low, high)
    factors = np.maximum(1, np.round(target_mm / cropped.spacing_mm)).astype(int)  # i, j, k
    if np.all(factors == 1):
        return Volume(cropped.array.astype(np.float32), cropped.ijk_to_ras)
    image = sitk.BinShrink(sitk.Cast(volume_to_sitk(cropped), sitk.sitkFloat32), [int(f) for f in factors])
    return volume_from_sitk(image)


def metal_mask(ct_small: Volume, metal_threshold_hu: float, head_depth_mm: Optional[np.ndarray] = None) -> np.ndarray:
    """Metal deep inside the head (skull excluded), dilated by ``METAL_MARGIN_MM``."""
    spacing = ct_small.spacing_mm
    if head_depth_mm is None:
        head_depth_mm = depth_inside_mm(_largest_filled(ct_small.array > -300), spacing)
    metal = (ct_small.array > metal_threshold_hu) & (head_depth_mm > METAL_DEPTH_MM)
    # Dense bone deep in the head (skull base) is above the threshold too: keep only the pieces whose
    # brightest voxel reaches metal values.
    labels, count = ndimage.label(metal)
    if count:
        peaks = ndimage.maximum(ct_small.array, labels, index=np.arange(1, count + 1))
        keep = np.concatenate([[False], np.asarray(peaks) >= max(METAL_PEAK_HU, metal_threshold_hu)])
        metal = keep[labels]
    return _dilate_mm(metal, spacing, METAL_MARGIN_MM)


def _to_sitk(array: np.ndarray, like: Volume, pixel=sitk.sitkFloat32) -> sitk.Image:
    return sitk.Cast(volume_to_sitk(like.with_array(array)), pixel)


def _isotropic_reference(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """A grid of ``spacing_mm`` voxels with the image's direction, covering the same extent."""
    old_spacing = np.array(image.GetSpacing())
    old_size = np.array(image.GetSize())
    size = np.maximum(1, np.ceil(old_size * old_spacing / spacing_mm)).astype(int)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # Keep the physical centre of the first voxel corner: origin moves by half the voxel-size change.
    origin = np.array(image.GetOrigin()) + direction @ ((spacing_mm - old_spacing) / 2.0)
    reference = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    reference.SetSpacing([spacing_mm] * 3)
    reference.SetDirection(image.GetDirection())
    reference.SetOrigin([float(v) for v in origin])
    return reference


def _level_image(image: sitk.Image, spacing_mm: float, interpolator=sitk.sitkLinear, smooth: bool = True) -> sitk.Image:
    """Gaussian-smoothed (sigma = half the level spacing, when coarser) and resampled to ``spacing_mm``."""
    current = float(min(image.GetSpacing()))
    if smooth and spacing_mm > current * 1.2:
        sigma = 0.5 * math.sqrt(max(spacing_mm ** 2 - current ** 2, 0.0))
        image = sitk.SmoothingRecursiveGaussian(image, sigma)
    if np.allclose(image.GetSpacing(), spacing_mm, rtol=0.05):
        return image
    return sitk.Resample(image, _isotropic_reference(image, spacing_mm), sitk.Transform(), interpolator, 0.0,
                         image.GetPixelID())


def _mask_level(mask: sitk.Image, spacing_mm: float) -> sitk.Image:
    if np.allclose(mask.GetSpacing(), spacing_mm, rtol=0.05):
        return mask
    return sitk.Resample(mask, _isotropic_reference(mask, spacing_mm), sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)


def _centroid_lps(mask: np.ndarray, volume: Volume) -> np.ndarray:
    kji = np.argwhere(mask)
    kji = kji[:: max(1, len(kji) // 200000)]
    return volume.ijk_to_ras_points(kji[:, ::-1].mean(0)) @ RAS_TO_LPS


# ---------------------------------------------------------------------------------------------------
# Registration


@dataclass
class _Pyramid:
    fixed: list
    fixed_masks: list
    moving: list
    moving_masks: list


def _build_pyramid(fixed: sitk.Image, fixed_mask: sitk.Image, moving: sitk.Image, moving_mask: sitk.Image) -> _Pyramid:
    pyramid = _Pyramid([], [], [], [])
    # Finest first; each coarser level is smoothed and resampled from the one below it (cheaper).
    for spacing in LEVELS_MM[::-1]:
        fixed = _level_image(fixed, spacing)
        moving = _level_image(moving, spacing)
        pyramid.fixed.insert(0, fixed)
        pyramid.moving.insert(0, moving)
        pyramid.fixed_masks.insert(0, _mask_level(fixed_mask, spacing))
        pyramid.moving_masks.insert(0, _mask_level(moving_mask, spacing))
    return pyramid


#: CT-to-CT fusion (same modality, sharp optimum): fewer iterations, larger smallest steps.
CT_CT_MAX_ITERATIONS = (100, 30, 20)
CT_CT_MIN_STEPS_MM = (0.05, 0.02, 0.01)
CT_CT_SAMPLING_FRACTIONS = (1.0, 0.1, 0.015)


def _register_level(pyramid: _Pyramid, level: int, start: sitk.Euler3DTransform, metric: str, seed: int = 7):
    same_modality = metric != "mi"
    method = sitk.ImageRegistrationMethod()
    if metric == "mi":
        method.SetMetricAsMattesMutualInformation(MI_BINS)
    else:
        method.SetMetricAsCorrelation()
    fraction = (CT_CT_SAMPLING_FRACTIONS if same_modality else SAMPLING_FRACTIONS)[level]
    if fraction < 1.0:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(fraction, seed)
    else:
        method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricFixedMask(pyramid.fixed_masks[level])
    method.SetMetricMovingMask(pyramid.moving_masks[level])
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=LEARNING_RATES_MM[level],
        minStep=(CT_CT_MIN_STEPS_MM if same_modality else MIN_STEPS_MM)[level],
        numberOfIterations=(CT_CT_MAX_ITERATIONS if same_modality else MAX_ITERATIONS)[level],
        relaxationFactor=RELAXATION[level], gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    transform = sitk.Euler3DTransform(start)
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(pyramid.fixed[level], pyramid.moving[level])
    return transform, float(method.GetMetricValue())


def _multistart(pyramid: _Pyramid, centre_fixed_lps, centres_moving_lps, metric: str,
                progress: ProgressCallback = None) -> tuple[sitk.Euler3DTransform, float, str]:
    starts = []
    for translation_name, centre_moving in centres_moving_lps.items():
        for angles in START_ROTATIONS_DEG:
            transform = sitk.Euler3DTransform()
            transform.SetCenter([float(v) for v in centre_fixed_lps])
            transform.SetTranslation([float(v) for v in np.asarray(centre_moving) - centre_fixed_lps])
            # Degrees about R, A, S; the transform lives in LPS (about L and P the angles change sign).
            rx, ry, rz = np.radians(angles)
            transform.SetRotation(float(-rx), float(-ry), float(rz))
            starts.append((transform, f"{translation_name} centroid, rotation {angles}"))
    results = []
    for index, (start, name) in enumerate(starts):
        transform, value = _register_level(pyramid, 0, start, metric)
        if math.isfinite(value):
            results.append((value, transform, name))
        if progress:
            progress(0.6 * (index + 1) / len(starts), f"fusion: coarse start {index + 1}/{len(starts)}")
    if not results:
        raise DBSInputError("the fusion failed: the CT and the MRI do not overlap from any start")
    results.sort(key=lambda item: item[0])
    candidates = results[:KEEP_AFTER_COARSE if metric == "mi" else 1]
    for level in range(1, len(LEVELS_MM)):
        refined = []
        for value, transform, name in candidates:
            transform, value = _register_level(pyramid, level, transform, metric)
            if math.isfinite(value):
                refined.append((value, transform, name))
        if not refined:
            raise DBSInputError("the fusion failed: the CT and the MRI no longer overlap at the finer levels")
        refined.sort(key=lambda item: item[0])
        candidates = refined[:1]
        if progress:
            progress(0.6 + 0.4 * level / (len(LEVELS_MM) - 1), f"fusion: level {LEVELS_MM[level]:g} mm")
    value, transform, name = candidates[0]
    return transform, value, name


def _mri_fixed(mri: Volume) -> tuple[sitk.Image, sitk.Image, np.ndarray, float]:
    """Fixed image (float32), fixed mask (head dilated), the head's centroid (LPS) and volume (mm³)."""
    head = mri_head_mask(mri)
    centre = _centroid_lps(head, mri)
    mask = _dilate_coarse(head, mri.spacing_mm, FIXED_MASK_MARGIN_MM)
    volume_mm3 = float(head.sum() * np.prod(mri.spacing_mm))
    return (_to_sitk(mri.array.astype(np.float32), mri), _to_sitk(mask.astype(np.uint8), mri, sitk.sitkUInt8), centre,
            volume_mm3)


def _ct_moving(ct_small: Volume, metal_threshold_hu: float, window) -> tuple[sitk.Image, sitk.Image, dict]:
    """Moving image (windowed), moving mask (metal excluded) and candidate centroids (LPS)."""
    head = _largest_filled(ct_small.array > -300)
    if not head.any():
        raise DBSInputError("no head found in the CT (nothing above -300 HU)")
    depth = depth_inside_mm(head, ct_small.spacing_mm)
    brain = (depth > 8.0) & (ct_small.array > -30) & (ct_small.array < 120)
    voxel_mm3 = float(np.prod(ct_small.spacing_mm))
    centres = {"CT head": (_centroid_lps(head, ct_small), head.sum() * voxel_mm3)}
    if brain.sum() > 1000:
        centres["CT brain"] = (_centroid_lps(brain, ct_small), brain.sum() * voxel_mm3)
    metal = metal_mask(ct_small, metal_threshold_hu, depth)
    windowed = np.clip(ct_small.array, *window).astype(np.float32)
    return _to_sitk(windowed, ct_small), _to_sitk((~metal).astype(np.uint8), ct_small, sitk.sitkUInt8), centres


def _result_matrix(transform: sitk.Transform) -> np.ndarray:
    """SimpleITK's registration transform maps fixed points to moving points: invert for moving -> fixed."""
    return np.linalg.inv(lps_matrix_to_ras(_transform_matrix_lps(transform)))


def fuse_ct_to_mri(mri: Volume, ct: Volume, metal_threshold_hu: float = DEFAULT_METAL_THRESHOLD_HU,
                   progress: ProgressCallback = None) -> Fusion:
    """Rigid mutual-information fusion of ``ct`` (moving) to ``mri`` (fixed); raises
    :class:`DBSInputError` when the result does not overlap the MRI."""
    started = time.perf_counter()
    ct_small = downsample_ct(ct, LEVELS_MM[-1])
    fixed, fixed_mask, centre_fixed, volume_fixed = _mri_fixed(mri)
    moving, moving_mask, centres = _ct_moving(ct_small, metal_threshold_hu, MI_WINDOW_HU)
    # Start from the CT region whose volume is closest to the MRI's: the brain for a skull-stripped
    # MRI, the head for a whole-head one.
    name = min(centres, key=lambda key: abs(math.log(centres[key][1] / volume_fixed)))
    pyramid = _build_pyramid(fixed, fixed_mask, moving, moving_mask)
    transform, value, start = _multistart(pyramid, centre_fixed, {name: centres[name][0]}, "mi", progress)
    ct_to_mri = _result_matrix(transform)
    overlap = check_overlap(mri, ct_small, ct_to_mri)
    starts = len(START_ROTATIONS_DEG)
    return Fusion(ct_to_mri, value, overlap,
                  f"rigid Mattes MI, {'/'.join(f'{s:g}' for s in LEVELS_MM)} mm pyramid, {starts} starts "
                  f"(best: {start}), metal > {metal_threshold_hu:g} HU excluded", time.perf_counter() - started)


def fuse_ct_to_ct(fixed_ct: Volume, moving_ct: Volume, metal_threshold_hu: float = DEFAULT_METAL_THRESHOLD_HU,
                  progress: ProgressCallback = None) -> Fusion:
    """Rigid correlation fusion of ``moving_ct`` (post-op) to ``fixed_ct`` (pre-op);
    ``ct_to_mri_ras`` of the result maps post-op CT RAS to pre-op CT RAS."""
    started = time.perf_counter()
    fixed_small = downsample_ct(fixed_ct, LEVELS_MM[-1])
    moving_small = downsample_ct(moving_ct, LEVELS_MM[-1])
    fixed_head = _largest_filled(fixed_small.array > -300)
    fixed_mask = _dilate_coarse(fixed_head, fixed_small.spacing_mm, FIXED_MASK_MARGIN_MM)
    fixed_metal = metal_mask(fixed_small, metal_threshold_hu)  # a pre-op CT may hold metal too
    fixed = _to_sitk(np.clip(fixed_small.array, *CT_CT_WINDOW_HU).astype(np.float32), fixed_small)
    fixed_mask_image = _to_sitk((fixed_mask & ~fixed_metal).astype(np.uint8), fixed_small, sitk.sitkUInt8)
    moving, moving_mask, centres = _ct_moving(moving_small, metal_threshold_hu, CT_CT_WINDOW_HU)
    centres = {"CT head": centres["CT head"][0]}
    pyramid = _build_pyramid(fixed, fixed_mask_image, moving, moving_mask)
    transform, value, start = _multistart(pyramid, _centroid_lps(fixed_head, fixed_small), centres, "correlation",
                                          progress)
    matrix = _result_matrix(transform)
    overlap = ct_overlap(fixed_small, moving_small, matrix)
    if overlap < MIN_OVERLAP:
        raise DBSInputError(
            f"the post-operative CT does not overlap the pre-operative CT after fusion (only {100 * overlap:.0f}% of "
            "the head in common); check the images or give the transform")
    return Fusion(matrix, value, overlap, f"rigid CT-CT correlation, {len(START_ROTATIONS_DEG)} starts (best: {start})",
                  time.perf_counter() - started)


def chain(postop_to_preop: Fusion, preop_to_mri: Fusion, mri: Volume, ct: Volume) -> Fusion:
    """Post-op CT -> pre-op CT -> MRI."""
    matrix = preop_to_mri.ct_to_mri_ras @ postop_to_preop.ct_to_mri_ras
    overlap = check_overlap(mri, ct, matrix)
    return Fusion(matrix, postop_to_preop.metric, overlap,
                  f"post-op CT -> pre-op CT ({postop_to_preop.method}), then pre-op CT -> MRI ({preop_to_mri.method})",
                  postop_to_preop.seconds + preop_to_mri.seconds)


# ---------------------------------------------------------------------------------------------------
# Overlap and user transforms


def _sample_points(volume: Volume, mask: np.ndarray, max_points: int = 30000) -> np.ndarray:
    kji = np.argwhere(mask)
    kji = kji[:: max(1, len(kji) // max_points)]
    return volume.ijk_to_ras_points(kji[:, ::-1].astype(float))


def _inside_head(ct: Volume, points_ct_ras: np.ndarray) -> np.ndarray:
    ijk = np.rint(ct.ras_to_ijk_points(points_ct_ras)).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(ct.shape_ijk)), axis=1)
    values = np.full(len(points_ct_ras), -1000.0)
    values[inside] = ct.array[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]]
    return values > -300


def head_overlap(mri: Volume, ct: Volume, ct_to_mri_ras: np.ndarray) -> float:
    """Fraction of the MRI's head (or brain) voxels that fall inside the CT's head (above -300 HU)."""
    points = _sample_points(mri, mri_head_mask(mri))
    return float(_inside_head(ct, transform_points(np.linalg.inv(ct_to_mri_ras), points)).mean())


def ct_overlap(fixed_ct: Volume, moving_ct: Volume, moving_to_fixed_ras: np.ndarray) -> float:
    points = _sample_points(fixed_ct, _largest_filled(fixed_ct.array > -300))
    return float(_inside_head(moving_ct, transform_points(np.linalg.inv(moving_to_fixed_ras), points)).mean())


def check_overlap(mri: Volume, ct: Volume, ct_to_mri_ras: np.ndarray) -> float:
    """:func:`head_overlap`, or a clear :class:`DBSInputError` below ``MIN_OVERLAP``."""
    overlap = head_overlap(mri, ct, ct_to_mri_ras)
    if overlap < MIN_OVERLAP:
        raise DBSInputError(
            f"the CT does not overlap the MRI after fusion: only {100 * overlap:.0f}% of the MRI's head lies inside the "
            f"CT's head (at least {100 * MIN_OVERLAP:.0f}% expected); check that both images are of this patient's head, "
            "or give the CT-to-MRI transform")
    return overlap


def read_ct_to_mri_transform(path, file_maps: str = "mri-to-ct") -> np.ndarray:
    """CT RAS -> MRI RAS from an ITK transform file (.tfm, .h5, .txt; LPS inside, as ITK and Slicer write).

    ``file_maps="mri-to-ct"`` (default): the file maps MRI points to CT points, as Slicer saves a transform
    node under which the CT is moved onto the MRI, and as ITK-based registrations of the CT (moving) to
    the MRI (fixed) write it. ``"ct-to-mri"``: the file maps CT points to MRI points. The transform must be
    rigid (no scale, shear, mirror or deformation)."""
    if file_maps not in TRANSFORM_FILE_CONVENTIONS:
        raise DBSInputError(f"unknown transform convention '{file_maps}': use one of {', '.join(TRANSFORM_FILE_CONVENTIONS)}")
    # frame.py's reader does the reading, sampling and rigidity checks; the CT plays the image, the MRI the frame.
    convention = "frame-to-image" if file_maps == "mri-to-ct" else "image-to-frame"
    return read_image_to_frame_transform(path, convention).image_to_frame_ras.copy()


def write_ct_to_mri_transform(ct_to_mri_ras: np.ndarray, path, file_maps: str = "mri-to-ct"):
    """Write ``ct_to_mri_ras`` as an ITK affine transform file readable by Slicer and by
    :func:`read_ct_to_mri_transform` with the same ``file_maps``."""
    from ..geometry.frame import FrameSpace, write_image_to_frame_transform

    convention = "frame-to-image" if file_maps == "mri-to-ct" else "image-to-frame"
    return write_image_to_frame_transform(FrameSpace.from_matrix(ct_to_mri_ras, "CT to MRI"), path, convention)


def user_fusion(mri: Volume, ct: Volume, path, file_maps: str = "mri-to-ct") -> Fusion:
    started = time.perf_counter()
    matrix = read_ct_to_mri_transform(path, file_maps)
    overlap = check_overlap(mri, ct, matrix)
    return Fusion(matrix, float("nan"), overlap, f"user transform {path} ({file_maps} file)", time.perf_counter() - started)


def fusion_error_mm(estimated_ct_to_mri: np.ndarray, true_ct_to_mri: np.ndarray, points_mri_ras) -> np.ndarray:
    """Distance (mm) between where the true and the estimated fusion put the CT voxel lying at each MRI point."""
    points = np.atleast_2d(np.asarray(points_mri_ras, float))
    in_ct = transform_points(np.linalg.inv(true_ct_to_mri), points)
    return np.linalg.norm(transform_points(estimated_ct_to_mri, in_ct) - points, axis=1)
