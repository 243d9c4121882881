"""The input-integrity gate: every image a command (or the Slicer module) works on passes here.

Classes of bad input, each refused with one line (:class:`DBSInputError`, exit code 2):

* **damaged file** — a compressed stream that ends early or is corrupt, or fewer voxel bytes than the
  header declares (ITK's NIfTI reader fills the missing part with zeros without a word, so the file is
  checked before it is read: :func:`check_file_integrity`); NaN or infinite voxels;
* **geometry** — direction cosines that are not orthonormal (a sheared grid: the NIfTI writer would
  straighten it and a label map would land elsewhere than the input), a zero, negative or non-finite
  voxel size (:func:`check_geometry`);
* **resolution** — voxels too coarse for the requested step (:data:`VOXEL_LIMITS_MM`: above 3 mm in-plane
  or 6 mm between slices the nuclei are one or two voxels);
* **content** — an empty or constant image, or a field of view too small to hold the basal ganglia.

Outputs are checked before any computation (:func:`check_output_destinations`): the folder can be
created and written, no output is a folder or lies under a file, no output would overwrite an input.
"""
from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .exceptions import DBSInputError

#: Largest in-plane voxel size and slice spacing (mm) each step accepts; None: no limit.
VOXEL_LIMITS_MM = {
    "segmentation": (3.0, 6.0),   # an MRI to segment
    "labels": (3.0, 6.0),         # a label map to plan on
    "ct": (3.0, 6.0),             # a post-operative CT to find the leads in
    "planning": None,             # the MRI beside given labels (figures only)
}
#: Largest departure of the direction matrix from orthonormal (max |DᵀD − I|): about 0.006°.
ORTHONORMAL_TOLERANCE = 1e-4
#: Smallest extent (mm) of the second-largest image axis that can hold the basal ganglia and midbrain.
MIN_FIELD_OF_VIEW_MM = 30.0

_NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIFTI_TYPE_FLOAT32, NIFTI_TYPE_FLOAT64


# --------------------------------------------------------------------------------------------- files
def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _nifti_header(header: bytes):
    """(endian, datatype, bitpix, voxel count, vox_offset) of a NIfTI-1 or NIfTI-2 header, or None."""
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348 and len(header) >= 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if size == 540 and len(header) >= 540:
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            vox_offset = int(struct.unpack(endian + "q", header[168:176])[0])
            break
    else:
        return None
    rank = int(dims[0])
    if not 1 <= rank <= 7 or any(int(d) < 0 for d in dims[1:rank + 1]):
        return None
    voxels = int(np.prod([max(1, int(d)) for d in dims[1:rank + 1]], dtype=np.int64))
    return endian, int(datatype), int(bitpix), voxels, max(vox_offset, size)


def check_file_integrity(path) -> None:
    """Refuse a NIfTI file (.nii, .nii.gz) that decompresses with an error, holds fewer voxel bytes than
    its header declares, or holds NaN/infinite voxels. Other formats' readers refuse short data themselves
    (NRRD, MetaImage); a folder (DICOM) is left to its reader."""
    path = Path(path)
    if path.is_dir() or _suffix(path) not in (".nii", ".nii.gz"):
        return
    compressed = _suffix(path) == ".nii.gz"
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(540)
            parsed = _nifti_header(head)
            if parsed is None:
                return  # not a NIfTI header we know: the reader decides
            endian, datatype, bitpix, voxels, vox_offset = parsed
            expected = vox_offset + voxels * max(1, bitpix // 8)
            dtype = _NIFTI_FLOAT_TYPES.get(datatype)
            if dtype is None and not compressed:
                total, bad = path.stat().st_size, 0
            else:
                total, bad, carry, chunk = 0, 0, b"", head
                while chunk:
                    start, total = total, total + len(chunk)
                    if dtype is not None and total > vox_offset:
                        data = carry + chunk[max(0, vox_offset - start):]
                        usable = len(data) // int(dtype[1]) * int(dtype[1])
                        bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:usable], endian + dtype))))
                        carry = data[usable:]
                    chunk = handle.read(1 << 24)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        if str(error).startswith("Not a gzipped file"):
            raise DBSInputError(f"cannot read image {path}: not gzip-compressed NIfTI data") from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DBSInputError(f"cannot read image {path}: the file is damaged or truncated (its compressed data "
                            f"ends early or is corrupt: {reason})") from None
    if total < expected:
        have = max(0, total - vox_offset) // max(1, bitpix // 8)
        raise DBSInputError(f"cannot read image {path}: the file is truncated: it holds {have} of the {voxels} "
                            f"voxels its header declares ({100.0 * have / max(1, voxels):.0f}%)")
    if bad:
        raise DBSInputError(f"the image contains {bad} NaN or infinite voxels: {path}")


# ------------------------------------------------------------------------------------------ volumes
def check_geometry(volume, name: str = "the image") -> None:
    """Voxel size positive and finite, direction cosines orthonormal."""
    matrix = np.asarray(volume.ijk_to_ras, float)
    if not np.all(np.isfinite(matrix)):
        raise DBSInputError(f"{name} has a non-finite position or direction in its header")
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 1e-6):
        raise DBSInputError(f"{name} has a zero voxel size ({_mm(spacing)} mm)")
    direction = matrix[:3, :3] / spacing
    departure = float(np.abs(direction.T @ direction - np.eye(3)).max())
    if departure > ORTHONORMAL_TOLERANCE:
        cosines = np.clip(np.abs(direction.T @ direction)[np.triu_indices(3, 1)], 0.0, 1.0)
        off = float(np.degrees(np.arcsin(cosines.max())))
        raise DBSInputError(
            f"{name} has a sheared grid (its axes are {off:.1f}° from perpendicular): resample it onto an "
            "orthogonal grid first (e.g. Slicer's Resample Scalar Volume), a label map could not be stored on it")
    if abs(np.linalg.det(direction)) < 0.5:
        raise DBSInputError(f"{name} has a degenerate direction matrix")


def check_voxel_size(volume, purpose: str, name: str = "the image") -> None:
    """Refuse voxels too coarse for ``purpose`` (a key of :data:`VOXEL_LIMITS_MM`)."""
    limits = VOXEL_LIMITS_MM[purpose]
    if limits is None:
        return
    max_in_plane, max_slice = limits
    spacing = np.sort(np.asarray(volume.spacing_mm, float))
    step = {"segmentation": "segmentation", "labels": "planning", "ct": "lead localization"}[purpose]
    if spacing[1] > max_in_plane + 1e-6:
        raise DBSInputError(f"{name} is too coarse for {step}: in-plane voxels of {spacing[0]:.2f} x {spacing[1]:.2f} mm "
                            f"(at most {max_in_plane:g} mm; voxel size {_mm(volume.spacing_mm)} mm)")
    if spacing[2] > max_slice + 1e-6:
        raise DBSInputError(f"{name} is too coarse for {step}: {spacing[2]:.2f} mm between slices "
                            f"(at most {max_slice:g} mm; voxel size {_mm(volume.spacing_mm)} mm)")


def check_content(volume, name: str = "the image") -> None:
    """Finite, not empty or constant, a field of view that can hold the basal ganglia."""
    array = volume.array
    if array.size == 0:
        raise DBSInputError(f"{name} is empty")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise DBSInputError(f"{name} contains {int(np.count_nonzero(~np.isfinite(array)))} NaN or infinite voxels")
    if float(array.max()) == float(array.min()):
        raise DBSInputError(f"{name} is constant (every voxel {float(array.min()):g}): no anatomy in it")
    extent = np.array(volume.shape_ijk) * np.asarray(volume.spacing_mm, float)
    if np.sort(extent)[1] < MIN_FIELD_OF_VIEW_MM:
        raise DBSInputError(f"the field of view of {name} ({' x '.join(f'{e:.0f}' for e in extent)} mm) is too small "
                            "to hold the basal ganglia and midbrain")


def check_volume(volume, purpose: str, name: str = "the image") -> None:
    """The whole gate for a volume already in memory (the Slicer module's entry point):
    geometry, then voxel size for ``purpose``, then content (label maps: geometry and voxel size)."""
    check_geometry(volume, name)
    check_voxel_size(volume, purpose, name)
    if purpose != "labels":
        check_content(volume, name)


def _mm(values) -> str:
    return " x ".join(f"{float(v):.2f}" for v in values)


# ------------------------------------------------------------------------------------------ outputs
def check_output_destinations(files: Iterable = (), folders: Iterable = (), inputs: Sequence = ()) -> None:
    """Before any computation: every output file and folder can be written, none is an input, none
    is given twice. A missing folder is fine when its nearest existing ancestor is a writable folder."""
    files = [Path(p) for p in files if p is not None]
    folders = [Path(p) for p in folders if p is not None]
    seen = {}
    for path in files + folders:
        key = os.path.abspath(path)
        if key in seen:
            raise DBSInputError(f"the same output path is given twice: {path}")
        seen[key] = path
    input_paths = [Path(p) for p in inputs if p is not None]
    for path in files:
        if path.is_dir():
            raise DBSInputError(f"cannot write {path}: it is a folder")
        _refuse_overwriting_inputs(path, input_paths)
        _check_writable_folder(path.parent, path)
    for path in folders:
        if path.exists() and not path.is_dir():
            raise DBSInputError(f"cannot write the output folder {path}: a file of that name exists")
        for source in input_paths:
            if source.is_file() and os.path.abspath(source.parent) == os.path.abspath(path) \
                    and source.name in ("plan.json", "report.md", "postop.json", "labels.nii.gz"):
                raise DBSInputError(f"the output folder {path} would overwrite the input {source}")
        _check_writable_folder(path.parent, path)
        if path.is_dir():
            _check_writable_folder(path, path)


def _refuse_overwriting_inputs(path: Path, inputs: Sequence[Path]) -> None:
    for source in inputs:
        same = os.path.abspath(source) == os.path.abspath(path)
        if not same and source.exists() and path.exists():
            try:
                same = os.path.samefile(source, path)
            except OSError:
                same = False
        if same:
            raise DBSInputError(f"the output {path} would overwrite the input {source}")


def _check_writable_folder(folder: Path, target: Path) -> None:
    existing = Path(os.path.abspath(folder))
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise DBSInputError(f"cannot write {target}: {existing} is a file, not a folder")
    try:  # a real probe: permissions, read-only file systems and ACLs all answer here
        descriptor, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=existing)
        os.close(descriptor)
        os.remove(probe)
    except OSError as error:
        raise DBSInputError(f"cannot write {target}: folder {existing} is not writable ({error.strerror})") from None
