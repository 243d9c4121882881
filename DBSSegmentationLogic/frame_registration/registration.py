"""``register_frame``: the whole frame registration as one plain function (used by the command line and by
the Slicer module's "Frame registration" step)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..geometry.frame import FrameSpace, leksell_from_frame_ras
from ..io.exceptions import DBSInputError
from ..io.volumes import Volume
from .localizer_geometry import LocalizerGeometry
from .rigid_fit import (
    MAX_RMS_MM,
    MAX_ROTATION_DEG,
    MAX_SCALE_DEVIATION,
    Fiducials,
    RigidFit,
    fit_localizer,
)
from .rod_detection import (
    Dots,
    SliceStack,
    detect_dots,
    find_n_localizers,
    find_rods,
    slice_stack,
)

FORMAT = "dbs-frame-registration/1"
#: At least this many N-localizers must be found (one N alone leaves the fit ill-conditioned).
MIN_N_LOCALIZERS = 2
#: Coarsest image handled: in-plane pixel and slice spacing (mm).
MAX_IN_PLANE_MM = 3.0
MAX_SLICE_SPACING_MM = 5.0


@dataclass
class FrameRegistration:
    """Result of :func:`register_frame`. ``image_to_frame_ras`` maps image RAS to frame-aligned RAS (frame
    centre at the origin; Leksell X = 100 - R, Y = 100 + A, Z = 100 - S). ``fiducials`` is the residual
    table: one dict per fiducial (N-localizer, rod, kind, slice, image RAS, Leksell X/Y/Z, residual mm)."""

    image_to_frame_ras: np.ndarray
    localizer: str
    rms_residual_mm: float
    max_residual_mm: float
    slices_used: int
    n_localizers_found: list
    rods: list
    fiducials: list
    rotation_deg: float
    affine_scales: Optional[list]
    seconds: float
    warnings: list = field(default_factory=list)
    # Kept for the figure; not part of the JSON.
    stack: Optional[SliceStack] = field(default=None, repr=False)
    dots: Optional[Dots] = field(default=None, repr=False)
    geometry: Optional[LocalizerGeometry] = field(default=None, repr=False)
    fiducial_set: Optional[Fiducials] = field(default=None, repr=False)

    def frame_space(self) -> FrameSpace:
        return FrameSpace.from_matrix(self.image_to_frame_ras, f"frame registration ({self.localizer})")

    def residuals_mm(self, image_to_frame_ras: Optional[np.ndarray] = None) -> np.ndarray:
        """Each fiducial's residual (mm) under the fitted transform, or under another one (e.g. a known truth)."""
        if image_to_frame_ras is None:
            return np.array([row["residual_mm"] for row in self.fiducials])
        return self.fiducial_set.residuals(np.asarray(image_to_frame_ras, dtype=float))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "localizer": self.localizer,
            "image_to_frame_ras": np.round(self.image_to_frame_ras, 8).tolist(),
            "convention": "image RAS -> frame-aligned RAS, frame centre at the origin; Leksell X = 100 - R, "
                          "Y = 100 + A, Z = 100 - S",
            "rms_residual_mm": round(self.rms_residual_mm, 4),
            "max_residual_mm": round(self.max_residual_mm, 4),
            "slices_used": self.slices_used,
            "fiducial_count": len(self.fiducials),
            "n_localizers_found": self.n_localizers_found,
            "rotation_from_image_axes_deg": round(self.rotation_deg, 3),
            "affine_check_scales": None if self.affine_scales is None else [round(s, 5) for s in self.affine_scales],
            "rods": self.rods,
            "fiducials": self.fiducials,
            "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }


def register_frame(volume: Volume, geometry: LocalizerGeometry,
                   progress: Optional[Callable[[float, str], None]] = None,
                   max_rms_mm: float = MAX_RMS_MM, max_rotation_deg: float = MAX_ROTATION_DEG,
                   max_scale_deviation: float = MAX_SCALE_DEVIATION) -> FrameRegistration:
    """Find the localizer's rods in a frame CT or MRI and fit the image-to-frame transform.

    Raises :class:`DBSInputError` (one line) when no localizer is found (a non-frame image) or when the
    fiducials do not fit the geometry rigidly (wrong geometry file, scaled or distorted image)."""
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    report(0.10, "detecting rod dots in each slice")
    stack = slice_stack(volume.array, volume.ijk_to_ras)
    if stack.array.shape[0] < 4:
        raise DBSInputError(f"the image has only {stack.array.shape[0]} slices: a frame registration needs a volume")
    if max(stack.in_plane_mm) > MAX_IN_PLANE_MM or stack.slice_spacing_mm > MAX_SLICE_SPACING_MM:
        raise DBSInputError(
            f"the image is too coarse for frame registration: {stack.in_plane_mm[0]:.2f} x {stack.in_plane_mm[1]:.2f} mm "
            f"pixels, {stack.slice_spacing_mm:.2f} mm between slices (at most {MAX_IN_PLANE_MM:g} mm and "
            f"{MAX_SLICE_SPACING_MM:g} mm)"
        )
    dots = detect_dots(stack, geometry.rod_diameter_mm)
    report(0.45, f"finding rods among {len(dots)} dots")
    rods = find_rods(dots, stack)
    report(0.60, f"grouping {len(rods)} rods into N-localizers")
    widths = [n.width_mm for n in geometry.n_localizers]
    detected = find_n_localizers(rods, dots, widths, [n.diagonal_angle_deg for n in geometry.n_localizers])
    if len(detected) < MIN_N_LOCALIZERS:
        raise DBSInputError(
            f"no stereotactic localizer found in the image: {len(detected)} N-localizer(s) of "
            f"'{geometry.name}' recognised ({len(rods)} straight rod(s) among {len(dots)} bright dots), at least "
            f"{MIN_N_LOCALIZERS} needed — is this a frame CT/MRI with the localizer box on?"
        )
    report(0.70, f"fitting {len(detected)} N-localizers")
    try:
        fit = fit_localizer(detected, dots, geometry, max_rotation_deg, max_rms_mm, max_scale_deviation)
    except DBSInputError:
        _refuse_if_mirrored(detected, dots, geometry, max_rotation_deg, max_rms_mm, max_scale_deviation)
        raise
    registration = _result(fit, detected, dots, stack, geometry, time.perf_counter() - started)
    report(0.80, "registered")
    return registration


def _refuse_if_mirrored(detected, dots: Dots, geometry: LocalizerGeometry, *limits) -> None:
    """A localizer that fits only after flipping the image left-right: say so (a header that mirrors the
    image would put every target on the wrong side)."""
    mirrored = Dots(dots.slice, dots.ijk, dots.ras * np.array([-1.0, 1.0, 1.0]), dots.strength, dots.area_mm2,
                    dots.border)
    try:
        fit_localizer(detected, mirrored, geometry, *limits)
    except DBSInputError:
        return
    raise DBSInputError(
        "the localizer fits the image only mirrored left-right: the image's orientation (header) is flipped — "
        "fix the image before planning, every side would be wrong"
    )


def _result(fit: RigidFit, detected, dots: Dots, stack: SliceStack, geometry: LocalizerGeometry,
            seconds: float) -> FrameRegistration:
    fiducials = fit.fiducials
    references = leksell_from_frame_ras(fiducials.frame_reference(fit.image_to_frame_ras))
    table = [
        {
            "n_localizer": str(fiducials.n_localizer[i]),
            "rod": str(fiducials.rod[i]),
            "kind": str(fiducials.kind[i]),
            "slice": int(fiducials.slice[i]),
            "image_ras": [round(float(v), 3) for v in fiducials.image_ras[i]],
            "leksell_xyz": [round(float(v), 3) for v in references[i]],
            "residual_mm": round(float(fit.residuals_mm[i]), 4),
        }
        for i in range(len(fiducials))
    ]
    rods = []
    for detected_n, (model_index, flipped) in zip(fit.detected, fit.assignment):
        model = geometry.n_localizers[model_index]
        first, second = (model.vertical_2, model.vertical_1) if flipped else (model.vertical_1, model.vertical_2)
        for rod, rod_id, role in ((detected_n.vertical_1, first, "vertical"), (detected_n.diagonal, model.diagonal,
                                                                               "diagonal"),
                                  (detected_n.vertical_2, second, "vertical")):
            residuals = fit.residuals_mm[fiducials.rod == rod_id]
            rods.append({
                "rod": rod_id, "n_localizer": model.name, "role": role, "dots": int(len(rod.dot_indices)),
                "fiducials": int(len(residuals)),
                "rms_residual_mm": round(float(np.sqrt(np.mean(residuals ** 2))), 4) if len(residuals) else None,
                "line_point_ras": [round(float(v), 3) for v in rod.point],
                "line_direction_ras": [round(float(v), 5) for v in rod.direction],
                "line_fit_rms_mm": round(rod.rms_mm, 4),
            })
    found = [geometry.n_localizers[index].name for index, _ in fit.assignment]
    missing = [n.name for n in geometry.n_localizers if n.name not in found]
    warnings = [f"N-localizer(s) not found in the image: {', '.join(missing)}"] if missing else []
    return FrameRegistration(
        image_to_frame_ras=fit.image_to_frame_ras, localizer=geometry.name, rms_residual_mm=fit.rms_mm,
        max_residual_mm=fit.max_mm, slices_used=int(len(np.unique(fiducials.slice))), n_localizers_found=found,
        rods=rods, fiducials=table, rotation_deg=fit.rotation_deg, affine_scales=fit.affine_scales, seconds=seconds,
        warnings=warnings, stack=stack, dots=dots, geometry=geometry, fiducial_set=fiducials,
    )
