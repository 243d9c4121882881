"""Label-driven synthetic MRI generator (domain randomisation after SynthSeg), seeded.

From the CIT168 template and its hard labels it makes images of random contrast with exact labels:

1. generation classes: background, 4 tissue classes (k-means of the template intensities inside the
   brain, outside the atlas structures), and one class per CIT168 structure and side;
2. a random intensity (mean and texture) per class, or the template's real intensities (with a random
   gamma or inversion), or a mix of both;
3. geometry: a pose (rotation, translation, per-axis scaling) and a smooth random displacement field on
   two scales (it changes the nuclei's size, shape, position and left/right symmetry), sampled on any
   output grid;
4. degradation: bias field, blur, thick slices along a random axis, noise, gamma;
5. optional left/right mirror (image flipped about template x = 0 and side codes swapped).

Everything runs in torch on the CPU; one numpy ``Generator`` drives all randomness, so a seed gives
exactly one case. Labels are our codes (see :mod:`labels`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..segmentation import labels as label_codes
from ..segmentation.intensity import normalize_intensity
from ..segmentation.priors import kmeans_1d

NUM_TISSUE_CLASSES = 4


def generation_classes(template_t1: np.ndarray, cit168_labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-voxel generation class and the number of classes.

    0 outside the brain (template == 0), 1..4 tissue classes by k-means of the intensity, then one
    class per CIT168 code present.
    """
    template_t1 = template_t1.astype(np.float32)
    brain = template_t1 > 0
    unlabelled_brain = brain & (cit168_labels == 0)
    centres = kmeans_1d(template_t1[unlabelled_brain][::7], NUM_TISSUE_CLASSES)
    classes = np.zeros(template_t1.shape, dtype=np.int64)
    tissue = np.argmin(np.abs(template_t1[..., None] - centres), axis=-1) + 1
    classes[brain] = tissue[brain]
    next_class = NUM_TISSUE_CLASSES + 1
    for code in np.unique(cit168_labels):
        if code == 0:
            continue
        classes[cit168_labels == code] = next_class
        next_class += 1
    return classes, next_class


@dataclass
class SynthesisConfig:
    """Ranges of the random draws (uniform unless stated)."""

    rotation_deg: float = 8.0  # per axis, residual misalignment of the localization
    translation_mm: float = 4.0  # per axis
    scale_range: tuple[float, float] = (0.9, 1.1)  # per axis
    coarse_displacement_mm: float = 2.5  # std of control-point displacement, 40 mm control spacing
    fine_displacement_mm: float = 1.2  # std, 12 mm control spacing
    template_intensity_probability: float = 0.25
    mix_probability: float = 0.2
    class_texture_std: float = 0.08
    bias_std: float = 0.3
    blur_sigma_mm: tuple[float, float] = (0.0, 1.0)
    thick_slice_probability: float = 0.6
    slice_thickness_mm: tuple[float, float] = (1.0, 3.5)
    noise_std: tuple[float, float] = (0.0, 0.08)
    gamma_log_std: float = 0.3
    inversion_probability: float = 0.15
    mirror_probability: float = 0.5


def _rotation_matrix(angles_rad) -> np.ndarray:
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_pose(rng: np.random.Generator, rotation_deg: float, translation_mm: float,
                scale_range=(1.0, 1.0), centre_ras=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 map from case RAS to template RAS: rotation, scaling and translation about ``centre_ras``."""
    angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, 3))
    scales = rng.uniform(scale_range[0], scale_range[1], 3)
    linear = _rotation_matrix(angles) @ np.diag(scales)
    centre = np.asarray(centre_ras, dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = centre - linear @ centre + rng.uniform(-translation_mm, translation_mm, 3)
    return matrix


def _smooth_field(rng: np.random.Generator, shape_kji, spacing_mm, control_spacing_mm: float,
                  std_mm: float) -> torch.Tensor:
    """Smooth random displacement (3, k, j, i) in mm: Gaussian control points, trilinear upsampling."""
    extent_mm = np.array(shape_kji) * np.array(spacing_mm)
    control = [max(2, int(math.ceil(e / control_spacing_mm)) + 1) for e in extent_mm]
    coarse = torch.from_numpy(rng.normal(0.0, std_mm, (1, 3, *control)).astype(np.float32))
    return F.interpolate(coarse, size=tuple(shape_kji), mode="trilinear", align_corners=True)[0]


def blur_along_axis(image: torch.Tensor, axis: int, sigma_vox: float) -> torch.Tensor:
    """Gaussian blur of a (k, j, i) tensor along one array axis (0, 1 or 2); zero padding, radius ceil(3 sigma)."""
    if sigma_vox < 0.2:
        return image
    radius = max(1, int(math.ceil(3 * sigma_vox)))
    blurred = ndimage.gaussian_filter1d(image.numpy(), sigma_vox, axis=axis, mode="constant", cval=0.0,
                                        radius=radius)
    return torch.from_numpy(blurred)


class LabelDrivenGenerator:
    """Makes (image, labels) pairs on any output grid from the template and its labels.

    ``template_t1`` and ``cit168_labels`` are arrays [k, j, i] on the grid ``template_ijk_to_ras``.
    ``crop_box_ras`` (min, max corners in template RAS) limits the source to a region, which makes
    generation cheap when outputs only cover that region (training on the ROI).
    """

    def __init__(self, template_t1: np.ndarray, cit168_labels: np.ndarray, template_ijk_to_ras: np.ndarray,
                 crop_box_ras=None, config: SynthesisConfig | None = None):
        self.config = config or SynthesisConfig()
        classes, self.num_classes = generation_classes(template_t1, cit168_labels)
        ours = label_codes.cit168_to_ours(cit168_labels).astype(np.int64)
        # each generation class maps to exactly one output label
        self.class_to_label = np.zeros(self.num_classes, dtype=np.int64)
        for c in range(self.num_classes):
            members = ours[classes == c]
            self.class_to_label[c] = members[0] if members.size else 0
        ijk_to_ras = np.asarray(template_ijk_to_ras, dtype=float)
        template = template_t1.astype(np.float32)
        if crop_box_ras is not None:
            box = np.asarray(crop_box_ras, dtype=float)  # rows: min corner, max corner (RAS mm)
            corners = np.array([[x, y, z] for x in box[:, 0] for y in box[:, 1] for z in box[:, 2]])
            ijk = (corners - ijk_to_ras[:3, 3]) @ np.linalg.inv(ijk_to_ras[:3, :3]).T
            lo = np.maximum(np.floor(ijk.min(0)).astype(int), 0)
            hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, np.array(template.shape[::-1]))
            template = template[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
            classes = classes[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
            shift = np.eye(4)
            shift[:3, 3] = lo
            ijk_to_ras = ijk_to_ras @ shift
        self.source_ijk_to_ras = ijk_to_ras
        self.source_ras_to_ijk = np.linalg.inv(ijk_to_ras)
        brain = template[template > 0]
        self.template_norm = torch.from_numpy(np.clip(template / np.percentile(brain, 99.5), 0, 1.2))
        self.classes = torch.from_numpy(classes)
        self.class_to_label_t = torch.from_numpy(self.class_to_label)

    # ---------------------------------------------------------------- intensities (source space)
    def _source_intensity(self, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.config
        means = torch.from_numpy(rng.uniform(0.0, 1.0, self.num_classes).astype(np.float32))
        stds = torch.from_numpy(rng.uniform(0.0, cfg.class_texture_std, self.num_classes).astype(np.float32))
        if rng.uniform() < 0.7:
            means[0] = 0.0  # outside the brain is usually dark (skull-stripped template)
        torch_gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        noise = torch.randn(self.classes.shape, generator=torch_gen)
        synthetic = means[self.classes] + stds[self.classes] * noise
        draw = rng.uniform()
        if draw < cfg.template_intensity_probability:
            real = self.template_norm.clone()
            if rng.uniform() < 0.5:
                real = 1.0 - real * (self.classes > 0)  # inverted contrast inside the brain
            return real
        if draw < cfg.template_intensity_probability + cfg.mix_probability:
            weight = float(rng.uniform(0.2, 0.8))
            return weight * self.template_norm + (1 - weight) * synthetic
        return synthetic

    # ---------------------------------------------------------------- sampling on an output grid
    def sample(self, rng: np.random.Generator, out_shape_kji, out_ijk_to_template_ras: np.ndarray,
               degrade: bool = True, allow_mirror: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One case on the output grid. ``out_ijk_to_template_ras`` includes the pose.

        Returns the normalised image (float32, [k, j, i]) and labels (int64, our codes).
        """
        cfg = self.config
        out_shape_kji = tuple(int(s) for s in out_shape_kji)
        spacing_mm = np.linalg.norm(np.asarray(out_ijk_to_template_ras)[:3, :3], axis=0)[::-1]  # k, j, i
        source = self._source_intensity(rng)
        # output voxel -> template RAS (+ smooth displacement) -> source voxel -> [-1, 1]
        k, j, i = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in out_shape_kji], indexing="ij")
        ijk1 = torch.stack([i, j, k, torch.ones_like(i)], dim=-1)
        matrix = torch.from_numpy(np.asarray(out_ijk_to_template_ras, dtype=np.float32))
        ras = (ijk1 @ matrix.T)[..., :3]
        displacement = (_smooth_field(rng, out_shape_kji, spacing_mm, 40.0, cfg.coarse_displacement_mm)
                        + _smooth_field(rng, out_shape_kji, spacing_mm, 12.0, cfg.fine_displacement_mm))
        ras = ras + displacement.permute(1, 2, 3, 0)
        to_src = torch.from_numpy(self.source_ras_to_ijk.astype(np.float32))
        src_ijk = ras @ to_src[:3, :3].T + to_src[:3, 3]
        size_ijk = torch.tensor(self.classes.shape[::-1], dtype=torch.float32)
        grid = (2.0 * src_ijk / (size_ijk - 1) - 1.0)[None]
        image = F.grid_sample(source[None, None], grid, mode="bilinear", padding_mode="zeros",
                              align_corners=True)[0, 0]
        classes = F.grid_sample(self.classes[None, None].float(), grid, mode="nearest",
                                padding_mode="zeros", align_corners=True)[0, 0].long()
        labels = self.class_to_label_t[classes]
        if degrade:
            image = self._degrade(rng, image, spacing_mm)
        image = normalize_intensity(image)
        if allow_mirror and rng.uniform() < cfg.mirror_probability:
            image, labels = mirror_left_right(image, labels)
        return image.float(), labels

    def _degrade(self, rng: np.random.Generator, image: torch.Tensor, spacing_kji_mm) -> torch.Tensor:
        cfg = self.config
        shape = image.shape
        # bias field (multiplicative, smooth)
        bias = _smooth_field(rng, shape, spacing_kji_mm, 50.0, cfg.bias_std)[0]
        image = image * torch.exp(bias)
        # isotropic blur
        sigma_mm = rng.uniform(*cfg.blur_sigma_mm)
        for axis in range(3):
            image = blur_along_axis(image, axis, sigma_mm / spacing_kji_mm[axis])
        # thick slices along one axis: slice profile blur, subsample, interpolate back
        if rng.uniform() < cfg.thick_slice_probability:
            axis = int(rng.integers(3))
            thickness_mm = rng.uniform(*cfg.slice_thickness_mm)
            factor = thickness_mm / spacing_kji_mm[axis]
            if factor > 1.2:
                image = blur_along_axis(image, axis, factor / 2.355)
                low_shape = list(shape)
                low_shape[axis] = max(2, int(round(shape[axis] / factor)))
                low = F.interpolate(image[None, None], size=tuple(low_shape), mode="trilinear", align_corners=True)
                image = F.interpolate(low, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]
        # noise, gamma, inversion
        image = normalize_intensity(image, 0.5, 99.5).clamp(0, 1)
        torch_gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        image = image + float(rng.uniform(*cfg.noise_std)) * torch.randn(shape, generator=torch_gen)
        image = image.clamp(0, None) ** float(math.exp(rng.normal(0, cfg.gamma_log_std)))
        if rng.uniform() < cfg.inversion_probability:
            image = 1.0 - image
        return image


def mirror_left_right(image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip a template-aligned ROI about its central x plane and swap the side codes."""
    lookup = torch.from_numpy(label_codes.mirror_lookup())
    return torch.flip(image, dims=[2]), lookup[torch.flip(labels, dims=[2])]


def synthesize_case(generator: LabelDrivenGenerator, rng: np.random.Generator, brain_box_ras: np.ndarray,
                    in_plane_mm: float = 1.0, slice_mm: float = 2.0, slice_axis: int | None = None,
                    rotation_deg: float = 15.0, translation_mm: float = 10.0,
                    scale_range=(0.95, 1.05)):
    """A whole-brain test case in a random pose, with thick slices, and its exact labels.

    ``brain_box_ras`` is the (2, 3) min/max corner of the template brain (template RAS). The case grid is
    axis-aligned in the case's own RAS space; ``slice_axis`` (0, 1, 2 = i, j, k; random if None) has
    ``slice_mm`` spacing, simulated as the mean of 3 sub-slices across the slice thickness; the labels are
    those of the centre sub-slice (exactly at the slice centre). Returns (image, labels, pose) where
    image and labels are (array [k, j, i], ijk_to_ras) pairs and ``pose`` maps case RAS to template RAS.
    """
    if slice_axis is None:
        slice_axis = int(rng.integers(3))
    pose = random_pose(rng, rotation_deg, translation_mm, scale_range, centre_ras=brain_box_ras.mean(axis=0))
    box = np.asarray(brain_box_ras, dtype=float)
    corners = np.array([[x, y, z] for x in box[:, 0] for y in box[:, 1] for z in box[:, 2]])
    inverse = np.linalg.inv(pose)
    corners_case = corners @ inverse[:3, :3].T + inverse[:3, 3]
    low, high = corners_case.min(0) - 5.0, corners_case.max(0) + 5.0
    spacing = np.full(3, in_plane_mm)
    spacing[slice_axis] = slice_mm
    shape_ijk = np.ceil((high - low) / spacing).astype(int)
    case_ijk_to_ras = np.diag([*spacing, 1.0])
    case_ijk_to_ras[:3, 3] = low
    # fine grid: 3 sub-slices per slice, centred on the slice centres
    fine_spacing = spacing.copy()
    fine_spacing[slice_axis] = slice_mm / 3.0
    fine_shape_ijk = shape_ijk.copy()
    fine_shape_ijk[slice_axis] *= 3
    fine_ijk_to_ras = np.diag([*fine_spacing, 1.0])
    fine_ijk_to_ras[:3, 3] = low
    fine_ijk_to_ras[slice_axis, 3] -= fine_spacing[slice_axis]
    config = generator.config
    thick_probability = config.thick_slice_probability
    config.thick_slice_probability = 0.0
    try:
        image, labels = generator.sample(rng, tuple(fine_shape_ijk[::-1]), pose @ fine_ijk_to_ras,
                                         degrade=True, allow_mirror=False)
    finally:
        config.thick_slice_probability = thick_probability
    array_axis = 2 - slice_axis
    new_shape = list(image.shape)
    new_shape[array_axis] = int(shape_ijk[slice_axis])
    new_shape.insert(array_axis + 1, 3)
    image = image.reshape(new_shape).mean(dim=array_axis + 1)
    labels = labels.reshape(new_shape).select(array_axis + 1, 1)
    image = (image.clamp(-0.5, 1.5) + 0.5) * 1000.0  # positive values, like a scanner's
    return (image.numpy().astype(np.float32), case_ijk_to_ras), (labels.numpy().astype(np.uint8), case_ijk_to_ras), pose


def brain_box_ras(template_t1: np.ndarray, template_ijk_to_ras: np.ndarray, threshold: float = 10.0) -> np.ndarray:
    """(2, 3) min/max RAS corners of the template brain (voxels above ``threshold``, 0.05% trimmed)."""
    ijk_to_ras = np.asarray(template_ijk_to_ras, dtype=float)
    kji = np.argwhere(template_t1 > threshold)
    corners_ijk = np.percentile(kji, [0.05, 99.95], axis=0)[:, ::-1]
    corners_ras = corners_ijk @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]
    return np.vstack([corners_ras.min(axis=0), corners_ras.max(axis=0)])
