"""Automatic localization: affine registration of the input to the shipped CIT168 template.

The template (2 mm, brain-masked) is the fixed image; the metric (Mattes mutual information, so any
contrast) is evaluated only inside the dilated template brain mask, so skull, neck and a partial field
of view of the input matter little. A rigid stage is started from several head rotations (up to 30
degrees about each axis) and vertical shifts (slabs) at 6 mm, the best is refined as an affine at 4 and
2 mm. The result maps template RAS to input RAS; the template's AC, PC and midline point mapped through
it are the automatic landmarks. When the user gives AC, PC and midline, the map is the rigid AC-PC
alignment instead (no registration).
"""
from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..geometry.acpc import AcpcSpace
from ..io.exceptions import DBSInputError
from ..io.volumes import Volume, volume_to_sitk
from . import template as template_space

_LPS4 = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Fraction of the fixed mask voxels used by the metric (fixed seed: reproducible).
_SAMPLING_FRACTION = 0.25
_SAMPLING_SEED = 12345


@dataclass
class Localization:
    """Map from template RAS to input RAS, and the landmarks in input RAS."""

    template_to_input_ras: np.ndarray  # 4x4
    ac_ras: np.ndarray
    pc_ras: np.ndarray
    midline_ras: np.ndarray
    method: str  # "registration" or "landmarks"
    metric: float = float("nan")  # Mattes MI of the final affine stage (lower is better)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"method": self.method, "metric": None if np.isnan(self.metric) else round(self.metric, 4),
                "seconds": round(self.seconds, 2), "template_to_input_ras": self.template_to_input_ras.round(5).tolist(),
                "ac_ras": self.ac_ras.round(2).tolist(), "pc_ras": self.pc_ras.round(2).tolist(),
                "midline_ras": self.midline_ras.round(2).tolist(), "notes": self.notes}


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def itk_transform_to_ras_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 RAS matrix of an ITK affine-like transform (which maps LPS points)."""
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(transform.GetMatrix())
    affine.SetTranslation(transform.GetTranslation())
    affine.SetCenter(transform.GetCenter())
    matrix_lps = np.eye(4)
    linear = np.array(affine.GetMatrix()).reshape(3, 3)
    centre = np.array(affine.GetCenter())
    matrix_lps[:3, :3] = linear
    matrix_lps[:3, 3] = np.array(affine.GetTranslation()) + centre - linear @ centre
    return _LPS4 @ matrix_lps @ _LPS4


def _shrink_to(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Gaussian-smooth and resample onto a grid with the image's directions and ``spacing_mm`` voxels."""
    spacing = np.array(image.GetSpacing())
    if np.all(spacing >= spacing_mm * 0.9):
        return image
    sigma = [max(0.0, (spacing_mm**2 - s**2)) ** 0.5 / 2.355 for s in spacing]
    smoothed = sitk.SmoothingRecursiveGaussian(image, [float(max(s, 0.01)) for s in sigma])
    size = [max(2, int(round(n * s / spacing_mm))) for n, s in zip(image.GetSize(), spacing)]
    new_spacing = [n * s / m for n, s, m in zip(image.GetSize(), spacing, size)]
    origin_index = [(ns / s - 1) / 2 for ns, s in zip(new_spacing, spacing)]
    origin = image.TransformContinuousIndexToPhysicalPoint(origin_index)
    return sitk.Resample(smoothed, size, sitk.Transform(), sitk.sitkLinear, origin, new_spacing,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def check_image_content(volume: Volume) -> None:
    """Reject images that cannot hold a head: NaN/inf, empty or constant, too small a field of view."""
    array = volume.array
    if not np.all(np.isfinite(array)):
        raise DBSInputError(f"the image contains {int(np.count_nonzero(~np.isfinite(array)))} NaN or infinite voxels")
    if array.size == 0 or float(array.max()) == float(array.min()):
        raise DBSInputError("the image is empty or constant: nothing to segment")
    extent_mm = np.array(volume.shape_ijk) * volume.spacing_mm
    if np.sort(extent_mm)[1] < 30.0:
        raise DBSInputError(f"the field of view ({' x '.join(f'{e:.0f}' for e in extent_mm)} mm) is too small "
                            "to hold the basal ganglia and midbrain")


def _normalised_input(volume: Volume) -> sitk.Image:
    image = sitk.Cast(volume_to_sitk(volume), sitk.sitkFloat32)
    array = sitk.GetArrayViewFromImage(image)
    sample = array.reshape(-1)[:: max(1, array.size // 500_000)]
    low, high = np.percentile(sample, [0.5, 99.5])
    if high <= low:
        raise DBSInputError("the image has almost no contrast (99% of voxels share one value)")
    return sitk.Cast(sitk.Clamp((image - float(low)) / float(high - low), sitk.sitkFloat64, 0.0, 1.0), sitk.sitkFloat32)


def _mutual_information_method(fixed_mask) -> sitk.ImageRegistrationMethod:
    """Mattes MI (32 bins) on a seeded random sample inside ``fixed_mask``, linear interpolation."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(_SAMPLING_FRACTION, _SAMPLING_SEED)
    method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _registration(fixed, fixed_mask, moving, transform, iterations: int, learning_rate: float):
    method = _mutual_information_method(fixed_mask)
    method.SetOptimizerAsRegularStepGradientDescent(learning_rate, 0.01, iterations, relaxationFactor=0.6,
                                                    gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return method.GetMetricValue()


def _metric(fixed, fixed_mask, moving, transform) -> float:
    method = _mutual_information_method(fixed_mask)
    method.SetInitialTransform(transform)
    try:
        return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError:  # too few samples overlap: no brain there
        return 0.0


#: Above this final Mattes MI (lower is better) no brain was recognised (template vs itself: -2.1;
#: real T1w head: -0.56; uniform noise: see Testing/logic/test_segmentation_command.py).
NO_BRAIN_METRIC = -0.1


@contextlib.contextmanager
def _one_itk_thread():
    """ITK on one thread, restored afterwards. With several, ITK sums the metric's per-thread gradients in
    whatever order its threads finish: the same image gave transforms differing in the 15th digit, which the
    multi-start and the later stages grew into a different localization, and different labels, from one run to
    the next (measured on a benchmark case: 3 runs, 3 localizations, 2 label maps). One thread costs about
    1.4 s on a 1 mm head (3.3 s instead of 1.9 s)."""
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def register_to_template(volume: Volume, rotation_starts_deg: float = 25.0) -> Localization:
    """Automatic localization by multi-start rigid then affine registration (see module docstring); the same
    image always gives the same localization (:func:`_one_itk_thread`)."""
    try:
        with _one_itk_thread():
            localization = _register(volume, rotation_starts_deg)
    except RuntimeError as error:  # SimpleITK: e.g. all samples fall outside the image
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise DBSInputError(f"registration to the brain template failed (is there a brain in the image?): {reason}") from None
    if localization.metric > NO_BRAIN_METRIC:
        raise DBSInputError(f"no brain recognised in the image (mutual information with the brain template "
                            f"{localization.metric:.3f}, at most {NO_BRAIN_METRIC} expected)")
    return localization


def _register(volume: Volume, rotation_starts_deg: float) -> Localization:
    started = time.perf_counter()
    check_image_content(volume)
    template_t1, template_mask = template_space.load_shipped_template()
    fixed_full = sitk.Cast(sitk.Cast(volume_to_sitk(template_t1), sitk.sitkFloat32) / 255.0, sitk.sitkFloat32)
    mask_full = sitk.BinaryDilate(sitk.Cast(volume_to_sitk(template_mask), sitk.sitkUInt8), [2, 2, 2])
    moving_full = _normalised_input(volume)
    fixed_6, moving_6 = _shrink_to(fixed_full, 6.0), _shrink_to(moving_full, 6.0)
    mask_6 = sitk.Resample(mask_full, fixed_6, sitk.Transform(), sitk.sitkNearestNeighbor)
    fixed_4, moving_4 = _shrink_to(fixed_full, 4.0), _shrink_to(moving_full, 4.0)
    mask_4 = sitk.Resample(mask_full, fixed_4, sitk.Transform(), sitk.sitkNearestNeighbor)
    moving_2 = _shrink_to(moving_full, 2.0)

    # centres: template brain centre of mass <-> input intensity centre of mass
    centre_init = sitk.CenteredTransformInitializer(fixed_6, moving_6, sitk.Euler3DTransform(),
                                                    sitk.CenteredTransformInitializerFilter.MOMENTS)
    base_translation = np.array(centre_init.GetTranslation())
    angle = np.deg2rad(rotation_starts_deg)
    starts = [(0.0, 0.0, 0.0)] + [tuple(angle * s * (np.arange(3) == axis)) for axis in range(3) for s in (-1, 1)]
    shifts_mm = [0.0, -20.0, 20.0]  # superior-inferior offsets of the centre (slabs, necks)
    candidates = []
    for rotation, shift in itertools.product(starts, shifts_mm):
        transform = sitk.Euler3DTransform(centre_init)
        transform.SetRotation(*rotation)
        transform.SetTranslation(tuple(base_translation + np.array([0.0, 0.0, shift])))
        candidates.append((_metric(fixed_6, mask_6, moving_6, transform), transform))
    candidates.sort(key=lambda item: item[0])
    best_metric, best = np.inf, None
    for _, transform in candidates[:4]:
        metric = _registration(fixed_6, mask_6, moving_6, transform, 60, 4.0)
        if metric < best_metric:
            best_metric, best = metric, transform
    affine = sitk.AffineTransform(3)
    affine.SetCenter(best.GetCenter())
    affine.SetMatrix(best.GetMatrix())
    affine.SetTranslation(best.GetTranslation())
    _registration(fixed_4, mask_4, moving_4, affine, 80, 2.0)
    metric = _registration(fixed_full, mask_full, moving_2, affine, 60, 1.0)
    matrix = itk_transform_to_ras_matrix(affine)
    localization = _from_matrix(matrix, "registration", metric, started)
    if metric > 2 * NO_BRAIN_METRIC:
        localization.notes.append(f"weak registration (mutual information {metric:.3f})")
    return localization


def _from_matrix(matrix: np.ndarray, method: str, metric: float, started: float) -> Localization:
    landmarks = template_space.load_landmarks()
    return Localization(matrix, _apply(matrix, landmarks["ac"]), _apply(matrix, landmarks["pc"]),
                        _apply(matrix, landmarks["midline"]), method, metric, time.perf_counter() - started)


def from_user_landmarks(ac_ras, pc_ras, midline_ras) -> Localization:
    """Rigid map that puts the template's AC-PC space onto the user's (no scaling, no registration)."""
    started = time.perf_counter()
    landmarks = template_space.load_landmarks()
    template_acpc = AcpcSpace.from_landmarks(landmarks["ac"], landmarks["pc"], landmarks["midline"])
    input_acpc = AcpcSpace.from_landmarks(ac_ras, pc_ras, midline_ras)
    # template RAS -> template AC-PC -> input RAS
    matrix = input_acpc.matrix_ras_to_acpc()
    acpc_to_input = np.linalg.inv(matrix)
    result = _from_matrix(acpc_to_input @ template_acpc.matrix_ras_to_acpc(), "landmarks", float("nan"), started)
    result.ac_ras, result.pc_ras, result.midline_ras = input_acpc.ac_ras, input_acpc.pc_ras, input_acpc.midline_ras
    return result
