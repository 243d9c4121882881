"""Synthetic frame CT or MRI: a head inside a stereotactic localizer box, with a known image-to-frame pose.

The localizer's rods (any :class:`LocalizerGeometry`) are drawn as cylinders with partial volume: each
slice is the average of thin sub-slices (slice thickness) and each pixel of a 3x3 in-plane supersample.
The frame is placed in the scanner by a rotation (tilt about R, A, S) and a translation; the acquisition
is axial, stored like DICOM (i to the left, j posterior, k superior). Options: CT (HU, acrylic plates
holding the rods) or MRI (rods bright, plates invisible, Rician-like noise), noise, metal (fixation pins
in the skull and a bright blob), speckles, plates removed, field of view and scan range that cut rods.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..frame_registration.localizer_geometry import LocalizerGeometry, NLocalizer
from ..io.volumes import Volume

CT_VALUES = {"air": -1000.0, "skin": 40.0, "skull": 1200.0, "brain": 35.0, "rod": 1800.0, "plate": 120.0,
             "metal": 3000.0}
MRI_VALUES = {"air": 0.0, "skin": 320.0, "skull": 40.0, "brain": 240.0, "rod": 900.0, "plate": 0.0,
              "metal": 0.0}
#: Head (skin surface) semi-axes R, A, S (mm) and centre in frame RAS; skin 4 mm, skull 6 mm.
HEAD_SEMI_AXES_MM = np.array([68.0, 86.0, 80.0])
HEAD_CENTRE_FRAME_RAS = np.array([0.0, -8.0, 12.0])
PLATE_THICKNESS_MM = 4.0
PLATE_MARGIN_MM = 8.0


@dataclass
class SyntheticFrameImage:
    volume: Volume
    image_to_frame_ras: np.ndarray  # the truth: image RAS -> frame-aligned RAS
    geometry: LocalizerGeometry  # the rods actually drawn (missing plates removed)


def frame_pose(tilt_deg=(0.0, 0.0, 0.0), translation_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 frame RAS -> image RAS: rotations about R, A, S (degrees, applied in that order) then a shift."""
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler("xyz", tilt_deg, degrees=True).as_matrix()
    matrix[:3, 3] = translation_mm
    return matrix


def make_frame_image(geometry: LocalizerGeometry, *, modality: str = "ct", in_plane_mm: float = 1.0,
                     slice_mm: float = 2.0, tilt_deg=(0.0, 0.0, 0.0), translation_mm=(0.0, 0.0, 0.0),
                     fov_mm=(250.0, 260.0), fov_centre_mm=(0.0, 0.0), s_range_mm=(-72.0, 78.0),
                     missing_plates=(), noise: float = 1.0, metal: bool = True, speckles: int = 0,
                     rod_diameter_mm: float | None = None, head: bool = True, rods: bool = True,
                     rod_error_mm: float = 0.0, seed: int = 0) -> SyntheticFrameImage:
    """A synthetic frame image. ``noise`` scales the modality's noise (CT 20 HU, MRI 4% of brain);
    ``rod_error_mm`` moves every rod end by a random offset (normal, this SD per axis) from the geometry,
    as a localizer built or mounted with that tolerance would be (the returned ``geometry`` is the nominal one)."""
    if modality not in ("ct", "mri"):
        raise ValueError("modality must be 'ct' or 'mri'")
    values = CT_VALUES if modality == "ct" else MRI_VALUES
    rng = np.random.default_rng(seed)
    drawn = geometry.without(missing_plates)
    nominal = drawn
    if rod_error_mm > 0:
        moved = {rod: ends + rng.normal(0.0, rod_error_mm, ends.shape) for rod, ends in drawn.rods.items()}
        drawn = _with_rods(drawn, moved)
    frame_to_image = frame_pose(tilt_deg, translation_mm)
    image_to_frame = np.linalg.inv(frame_to_image)
    diameter = rod_diameter_mm or geometry.rod_diameter_mm

    size_i = int(round(fov_mm[0] / in_plane_mm))
    size_j = int(round(fov_mm[1] / in_plane_mm))
    size_k = int(round((s_range_mm[1] - s_range_mm[0]) / slice_mm))
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = np.diag([-in_plane_mm, -in_plane_mm, slice_mm])  # i -> L, j -> P, k -> S
    ijk_to_ras[:3, 3] = [fov_centre_mm[0] + (size_i - 1) / 2 * in_plane_mm,
                         fov_centre_mm[1] + (size_j - 1) / 2 * in_plane_mm, s_range_mm[0] + slice_mm / 2]
    r_coords = ijk_to_ras[0, 3] - in_plane_mm * np.arange(size_i)
    a_coords = ijk_to_ras[1, 3] - in_plane_mm * np.arange(size_j)
    s_centres = ijk_to_ras[2, 3] + slice_mm * np.arange(size_k)

    image = np.full((size_k, size_j, size_i), values["air"], np.float32)
    grid_r, grid_a = np.meshgrid(r_coords, a_coords)  # (j, i)
    if head:
        _draw_head(image, grid_r, grid_a, s_centres, image_to_frame, values, in_plane_mm)
    if modality == "ct" and values["plate"] != values["air"]:
        _draw_plates(image, grid_r, grid_a, s_centres, frame_to_image, drawn, values)
    if rods:
        _draw_rods(image, ijk_to_ras, s_centres, slice_mm, in_plane_mm, frame_to_image, drawn, diameter, values)
    if metal and values["metal"] != values["air"] and head:
        _draw_metal(image, grid_r, grid_a, s_centres, frame_to_image, values)
    if speckles:
        k = rng.integers(0, size_k, speckles)
        j = rng.integers(0, size_j, speckles)
        i = rng.integers(0, size_i, speckles)
        image[k, j, i] += rng.uniform(0.5, 1.5, speckles).astype(np.float32) * (values["rod"] - values["air"])
    if noise > 0:
        if modality == "ct":
            image += rng.normal(0.0, 20.0 * noise, image.shape).astype(np.float32)
        else:
            sigma = 0.04 * values["brain"] * noise
            real = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
            imaginary = rng.normal(0.0, sigma, image.shape).astype(np.float32)
            image = np.sqrt(real * real + imaginary * imaginary)
    if modality == "ct":
        image = np.clip(np.round(image), -1024, 3071).astype(np.int16)
    return SyntheticFrameImage(Volume(image, ijk_to_ras), image_to_frame, nominal)


def _with_rods(geometry: LocalizerGeometry, rods: dict) -> LocalizerGeometry:
    n_localizers = tuple(NLocalizer(n.name, n.vertical_1, n.diagonal, n.vertical_2, rods[n.vertical_1],
                                    rods[n.diagonal], rods[n.vertical_2]) for n in geometry.n_localizers)
    return LocalizerGeometry(geometry.name, rods, n_localizers, geometry.rod_diameter_mm, geometry.source)


def _draw_head(image, grid_r, grid_a, s_centres, image_to_frame, values, pixel_mm) -> None:
    """Ellipsoidal shells (skin, skull, brain) with a linear ramp one pixel wide at each boundary
    (partial volume: no staircase edges)."""
    rotation, shift = image_to_frame[:3, :3], image_to_frame[:3, 3]
    scale = float(np.min(HEAD_SEMI_AXES_MM))
    for k, s in enumerate(s_centres):
        points = np.stack([grid_r, grid_a, np.full_like(grid_r, s)], axis=-1)
        frame = points @ rotation.T + shift - HEAD_CENTRE_FRAME_RAS
        radius = np.sqrt(np.sum((frame / HEAD_SEMI_AXES_MM) ** 2, axis=-1))  # 1 on the skin surface
        depth = (1.0 - radius) * scale  # approximate depth below the skin (mm)
        value = np.full(depth.shape, values["air"], np.float32)
        for tissue, start in (("skin", 0.0), ("skull", 4.0), ("brain", 10.0)):
            below = np.clip((depth - start) / pixel_mm + 0.5, 0.0, 1.0).astype(np.float32)
            value += below * (np.float32(values[tissue]) - value)
        image[k] = value


def _draw_plates(image, grid_r, grid_a, s_centres, frame_to_image, geometry, values) -> None:
    image_to_frame = np.linalg.inv(frame_to_image)
    rotation, shift = image_to_frame[:3, :3], image_to_frame[:3, 3]
    for n in geometry.n_localizers:
        v = n.vertical_direction
        across = n.across
        normal = np.cross(v, across)
        origin = n.vertical_1_ras[0]
        w_range = sorted([(n.vertical_1_ras[0] - origin) @ v, (n.vertical_1_ras[1] - origin) @ v])
        for k, s in enumerate(s_centres):
            points = np.stack([grid_r, grid_a, np.full_like(grid_r, s)], axis=-1)
            frame = points @ rotation.T + shift - origin
            inside = (np.abs(frame @ normal) <= PLATE_THICKNESS_MM / 2)
            if not inside.any():
                continue
            u = frame @ across
            w = frame @ v
            inside &= (u >= -PLATE_MARGIN_MM) & (u <= n.width_mm + PLATE_MARGIN_MM)
            inside &= (w >= w_range[0] - PLATE_MARGIN_MM) & (w <= w_range[1] + PLATE_MARGIN_MM)
            image[k][inside] = values["plate"]


def _draw_rods(image, ijk_to_ras, s_centres, slice_mm, in_plane_mm, frame_to_image, geometry, diameter,
               values) -> None:
    """Cylinders with partial volume: sub-slices every ~0.2 mm and a 3x3 in-plane supersample."""
    radius = diameter / 2.0
    sub = max(2, int(np.ceil(slice_mm / 0.2)))
    sub_offsets = (np.arange(sub) + 0.5) / sub - 0.5
    ras_to_ijk = np.linalg.inv(ijk_to_ras)
    _, size_j, size_i = image.shape
    occupancy = np.zeros(image.shape, np.float32)
    for ends in geometry.rods.values():
        ends_image = ends @ frame_to_image[:3, :3].T + frame_to_image[:3, 3]
        start, axis_vector = ends_image[0], ends_image[1] - ends_image[0]
        length = float(np.linalg.norm(axis_vector))
        axis = axis_vector / length
        if abs(axis[2]) < 0.2:
            raise ValueError("rods must cross the axial slices")
        half_window = radius / abs(axis[2]) + 2 * in_plane_mm
        for k, s_centre in enumerate(s_centres):
            for offset in sub_offsets:
                s = s_centre + offset * slice_mm
                param = (s - start[2]) / axis[2]
                if param < -radius or param > length + radius:
                    continue
                centre = start + param * axis
                centre_ijk = centre @ ras_to_ijk[:3, :3].T + ras_to_ijk[:3, 3]
                reach = int(np.ceil(half_window / in_plane_mm)) + 1
                i0, i1 = max(0, int(centre_ijk[0]) - reach), min(size_i, int(centre_ijk[0]) + reach + 2)
                j0, j1 = max(0, int(centre_ijk[1]) - reach), min(size_j, int(centre_ijk[1]) + reach + 2)
                if i0 >= i1 or j0 >= j1:
                    continue
                fine_i = i0 + (np.arange((i1 - i0) * 3) + 0.5) / 3 - 0.5
                fine_j = j0 + (np.arange((j1 - j0) * 3) + 0.5) / 3 - 0.5
                r = (ijk_to_ras[0, 0] * fine_i + ijk_to_ras[0, 3])[None, :]
                a = (ijk_to_ras[1, 1] * fine_j + ijk_to_ras[1, 3])[:, None]
                offset_r, offset_a, offset_s = r - start[0], a - start[1], s - start[2]
                along = offset_r * axis[0] + offset_a * axis[1] + offset_s * axis[2]
                perp2 = (offset_r ** 2 + offset_a ** 2 + offset_s ** 2) - along ** 2
                inside = (perp2 <= radius * radius) & (along >= 0) & (along <= length)
                fraction = inside.reshape(j1 - j0, 3, i1 - i0, 3).mean(axis=(1, 3))
                occupancy[k, j0:j1, i0:i1] += fraction.astype(np.float32) / sub
    np.clip(occupancy, 0, 1, out=occupancy)
    image += occupancy * (np.float32(values["rod"]) - image)


def _draw_metal(image, grid_r, grid_a, s_centres, frame_to_image, values) -> None:
    """Four fixation pins (short metal rods through the scalp) and a dental-filling-like blob."""
    pins_frame = [(-60.0, 55.0, -30.0), (60.0, 55.0, -30.0), (-55.0, -80.0, -20.0), (55.0, -80.0, -20.0)]
    blob_frame = [(0.0, 70.0, -62.0)]
    for centre_frame, radius in [(p, 3.0) for p in pins_frame] + [(b, 5.0) for b in blob_frame]:
        centre = frame_to_image[:3, :3] @ np.array(centre_frame) + frame_to_image[:3, 3]
        for k, s in enumerate(s_centres):
            if abs(s - centre[2]) > radius:
                continue
            inside = (grid_r - centre[0]) ** 2 + (grid_a - centre[1]) ** 2 + (s - centre[2]) ** 2 <= radius ** 2
            image[k][inside] = values["metal"]
