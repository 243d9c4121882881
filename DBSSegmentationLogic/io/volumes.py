"""The one place that reads and writes images.

A :class:`Volume` is a numpy array plus its exact geometry in RAS millimetres, laid out as Slicer
does it (``slicer.util.arrayFromVolume``): the array is indexed ``[k, j, i]`` and ``ijk_to_ras`` maps
a voxel index ``(i, j, k, 1)`` to RAS. SimpleITK works in LPS; the conversion happens only here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .exceptions import DBSInputError
from .input_checks import check_file_integrity, check_volume
from .library_output import captured_native_stderr
from .staged_output import atomic_output

#: Diagonal that turns RAS into LPS and back (it is its own inverse).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])

#: Single-file formats we write (a header + data pair such as .mhd/.raw cannot be renamed atomically).
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")


def ras_to_lps(points) -> np.ndarray:
    """RAS point(s) (..., 3) in mm to LPS: negate x and y."""
    return np.asarray(points, dtype=float) @ RAS_TO_LPS


def lps_to_ras(points) -> np.ndarray:
    """LPS point(s) (..., 3) in mm to RAS: negate x and y."""
    return np.asarray(points, dtype=float) @ RAS_TO_LPS


@dataclass
class Volume:
    """A 3D image: ``array[k, j, i]`` and the 4x4 matrix from voxel index (i, j, k) to RAS mm."""

    array: np.ndarray
    ijk_to_ras: np.ndarray

    def __post_init__(self):
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=float)
        if self.array.ndim != 3:
            raise DBSInputError(f"expected a 3D image, got {self.array.ndim} dimensions {self.array.shape}")
        if self.ijk_to_ras.shape != (4, 4):
            raise DBSInputError("ijk_to_ras must be a 4x4 matrix")

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size along i, j, k."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def direction_ras(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of the i, j, k axes."""
        return self.ijk_to_ras[:3, :3] / self.spacing_mm

    @property
    def origin_ras(self) -> np.ndarray:
        """RAS position of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.array.shape
        return (i, j, k)

    def ijk_to_ras_points(self, ijk) -> np.ndarray:
        """Voxel indices (..., 3) in i, j, k order (may be fractional) to RAS mm."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk_points(self, ras) -> np.ndarray:
        """RAS mm (..., 3) to fractional voxel indices in i, j, k order."""
        ras = np.asarray(ras, dtype=float)
        return (ras - self.ijk_to_ras[:3, 3]) @ np.linalg.inv(self.ijk_to_ras[:3, :3]).T

    def with_array(self, array: np.ndarray) -> "Volume":
        """A volume on the same grid with other voxel values (e.g. a label map)."""
        if array.shape != self.array.shape:
            raise DBSInputError(f"array shape {array.shape} does not match the grid {self.array.shape}")
        return Volume(array, self.ijk_to_ras.copy())


def volume_from_sitk(image: sitk.Image) -> Volume:
    """SimpleITK image (LPS geometry) to a :class:`Volume` (RAS geometry)."""
    if image.GetDimension() != 3:
        raise DBSInputError(f"expected a 3D image, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DBSInputError(
            f"expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    direction_lps = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    origin_lps = np.array(image.GetOrigin(), dtype=float)
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = RAS_TO_LPS @ direction_lps @ np.diag(spacing)
    ijk_to_ras[:3, 3] = RAS_TO_LPS @ origin_lps
    return Volume(sitk.GetArrayFromImage(image), ijk_to_ras)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """:class:`Volume` (RAS) to a SimpleITK image (LPS) with the same voxel positions."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    spacing = volume.spacing_mm
    direction_lps = RAS_TO_LPS @ volume.direction_ras
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in direction_lps.ravel()])
    image.SetOrigin([float(v) for v in RAS_TO_LPS @ volume.origin_ras])
    return image


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise DBSInputError(f"no DICOM series found in folder {folder}")
    if len(series_ids) > 1:
        raise DBSInputError(
            f"folder {folder} holds {len(series_ids)} DICOM series; give a folder with exactly one"
        )
    files = reader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    reader.SetFileNames(files)
    image = reader.Execute()
    _check_slice_positions(files, image, folder)
    return image


def _check_slice_positions(files, image: sitk.Image, folder: Path) -> None:
    """Refuse a series with missing or unevenly spaced slices. GDCM leaves out a file it cannot parse (a
    truncated slice, for one) and ITK then spreads the remaining slices over the whole extent, warning only
    on its console: the volume would be silently stretched."""
    if len(files) < 3:
        return
    normal = np.array(image.GetDirection(), float).reshape(3, 3)[:, 2]
    heights = []
    for name in files:
        header = sitk.ImageFileReader()
        header.SetFileName(name)
        header.ReadImageInformation()
        if not header.HasMetaDataKey("0020|0032"):
            return  # no Image Position (Patient): nothing to check against
        heights.append(float(np.dot([float(v) for v in header.GetMetaData("0020|0032").split("\\")[:3]], normal)))
    gaps = np.diff(np.sort(heights))
    typical = float(np.median(gaps))
    if typical <= 0 or float(gaps.max() - gaps.min()) > max(0.01, 0.01 * typical):
        raise DBSInputError(f"the DICOM series in {folder} has missing or unevenly spaced slices (gaps from "
                            f"{gaps.min():.2f} to {gaps.max():.2f} mm between {len(files)} slices; a damaged file?)")


def read_sitk_image(path) -> sitk.Image:
    """Read NIfTI, NRRD, MHA/MHD or a DICOM series folder; raise :class:`DBSInputError` when unreadable,
    damaged or truncated (checked before reading: ITK zero-fills a short NIfTI file silently)."""
    path = Path(path)
    if not path.exists():
        raise DBSInputError(f"image not found: {path}")
    if not path.is_dir() and path.stat().st_size == 0:
        raise DBSInputError(f"image file is empty: {path}")
    check_file_integrity(path)
    with captured_native_stderr() as printed:
        try:
            image = _read_dicom_series(path) if path.is_dir() else sitk.ReadImage(str(path))
            error = None
        except RuntimeError as caught:  # SimpleITK reports unreadable files as RuntimeError
            error = caught
    if error is not None:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "unknown reason"
        if printed and (reason.startswith("Reason:") or not lines):
            # MetaIO says why only on the C stderr ("data not read completely ... ideal = N : actual = M")
            reason = " ".join(printed[:2])
        raise DBSInputError(f"cannot read image {path}: {reason}")
    return image


def read_volume(path) -> Volume:
    """Read a 3D scalar image into a :class:`Volume` with exact RAS geometry."""
    return volume_from_sitk(read_sitk_image(path))


def read_checked_volume(path, purpose: str, name: str | None = None) -> Volume:
    """Read an image through the whole input gate: file integrity (before reading), then geometry,
    voxel size for ``purpose`` and content (:func:`io.input_checks.check_volume`)."""
    volume = read_volume(path)
    check_volume(volume, purpose, name or f"image {path}")
    return volume


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def check_image_output_format(path) -> None:
    """Refuse an output image name whose format we cannot write (checked before any computation)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise DBSInputError(f"cannot write image format '{suffix}' ({path}); use one of {', '.join(WRITE_SUFFIXES)}")


def write_volume(volume: Volume, path, compress: bool = True) -> Path:
    """Write atomically (temporary name in the same folder, then rename): a failure leaves no file."""
    path = Path(path)
    suffix = _suffix(path)
    check_image_output_format(path)
    with atomic_output(path, suffix) as temporary:
        with captured_native_stderr():
            sitk.WriteImage(volume_to_sitk(volume), str(temporary), compress)
        _check_stored_geometry(volume, temporary, path)
    return path


#: Largest distance (mm) a grid corner may move between a volume and the file written from it.
STORED_GEOMETRY_TOLERANCE_MM = 0.01


def _check_stored_geometry(volume: Volume, written: Path, path: Path) -> None:
    """Read the written header back: the file must put every voxel where the volume has it (the NIfTI
    writer, for one, straightens a sheared direction matrix without failing)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(written))
    with captured_native_stderr():
        reader.ReadImageInformation()
    stored = np.eye(4)
    direction = np.array(reader.GetDirection(), float).reshape(3, 3)
    stored[:3, :3] = RAS_TO_LPS @ direction @ np.diag(np.array(reader.GetSpacing(), float))
    stored[:3, 3] = RAS_TO_LPS @ np.array(reader.GetOrigin(), float)
    size = np.array(volume.shape_ijk, float) - 1
    corners = np.array([[a, b, c, 1.0] for a in (0, size[0]) for b in (0, size[1]) for c in (0, size[2])])
    moved = float(np.linalg.norm((corners @ (stored - volume.ijk_to_ras).T)[:, :3], axis=1).max())
    if moved > STORED_GEOMETRY_TOLERANCE_MM:
        raise DBSInputError(f"{path.name} cannot hold this grid exactly (a corner would move {moved:.2f} mm, "
                            "sheared axes?): the image was not written")
