"""Image IO keeps geometry: every voxel lands at the same physical (RAS) point after a round trip."""
import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given
from hypothesis import strategies as st

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import (
    Volume,
    lps_to_ras,
    ras_to_lps,
    read_volume,
    volume_from_sitk,
    volume_to_sitk,
    write_volume,
)

finite = st.floats(-1e4, 1e4, allow_nan=False)


@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=5))
def test_ras_lps_round_trip(points):
    points = np.array(points)
    assert np.max(np.abs(lps_to_ras(ras_to_lps(points)) - points), initial=0) <= 1e-9
    lps = ras_to_lps(points)
    np.testing.assert_array_equal(lps[:, 0], -points[:, 0])
    np.testing.assert_array_equal(lps[:, 1], -points[:, 1])
    np.testing.assert_array_equal(lps[:, 2], points[:, 2])


def oblique_permuted_volume(dtype=np.int16) -> Volume:
    """A 60° oblique rotation, anisotropic spacing (0.75, 1.5, 3 mm), permuted and flipped axes.

    Its matrix entries are dyadic rationals, exactly representable in float32, so the float32
    NIfTI header can hold them without rounding."""
    rotation = np.array([[2, -1, 2], [2, 2, -1], [-1, 2, 2]], dtype=float) / 3.0  # det +1, 60°
    permutation_with_flip = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ permutation_with_flip @ np.diag([0.75, 1.5, 3.0])
    matrix[:3, 3] = [-20.25, 13.5, 7.125]
    array = np.arange(7 * 6 * 5, dtype=dtype).reshape(7, 6, 5) * 3 - 100  # shape (k, j, i)
    return Volume(array, matrix)


def voxel_positions_ras(volume: Volume) -> np.ndarray:
    i, j, k = np.meshgrid(*[np.arange(n) for n in volume.shape_ijk], indexing="ij")
    return volume.ijk_to_ras_points(np.stack([i, j, k], axis=-1).reshape(-1, 3))


def assert_same_voxels_at_same_points(original: Volume, reread: Volume, tolerance_mm=1e-6):
    """Each original voxel's physical point falls exactly on a voxel of the re-read volume with the same value."""
    points = voxel_positions_ras(original)
    ijk = reread.ras_to_ijk_points(points)
    index = np.rint(ijk).astype(int)
    error_mm = np.linalg.norm(reread.ijk_to_ras_points(index) - points, axis=1)
    assert error_mm.max() <= tolerance_mm
    i, j, k = np.meshgrid(*[np.arange(n) for n in original.shape_ijk], indexing="ij")
    original_values = original.array[k.ravel(), j.ravel(), i.ravel()]
    np.testing.assert_array_equal(reread.array[index[:, 2], index[:, 1], index[:, 0]], original_values)


def test_volume_sitk_conversion_is_exact_and_lps_at_the_boundary():
    volume = oblique_permuted_volume()
    image = volume_to_sitk(volume)
    # SimpleITK's physical point of a voxel is the LPS version of our RAS point.
    for ijk in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
        np.testing.assert_allclose(lps_to_ras(lps), volume.ijk_to_ras_points(ijk), atol=1e-12)
    back = volume_from_sitk(image)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, atol=1e-12)
    np.testing.assert_array_equal(back.array, volume.array)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_file_round_trip_keeps_every_voxel_at_its_point(tmp_path, suffix):
    volume = oblique_permuted_volume()
    path = write_volume(volume, tmp_path / f"image{suffix}")
    assert_same_voxels_at_same_points(volume, read_volume(path))


@given(st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi),
       st.sampled_from(list(itertools.permutations(range(3)))), st.tuples(*[st.sampled_from([-1, 1])] * 3),
       st.tuples(*[st.floats(0.3, 3.0)] * 3), st.tuples(*[st.floats(-200, 200)] * 3))
def test_double_precision_formats_keep_arbitrary_geometry(tmp_path_factory, a, b, c, order, signs, spacing, origin):
    """NRRD and MHA store geometry in double precision: any rotation, order, flip and spacing survive."""
    rotation = sitk.Euler3DTransform((0, 0, 0), a, b, c).GetMatrix()
    permutation = np.eye(3)[:, list(order)] * np.array(signs)
    if np.linalg.det(permutation) < 0:
        permutation[:, 0] *= -1  # keep a proper frame; mirrored ones are tested through the flips below
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(rotation).reshape(3, 3) @ permutation @ np.diag(spacing)
    matrix[:3, 3] = origin
    volume = Volume(np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2), matrix)
    folder = tmp_path_factory.mktemp("geom")
    for suffix in (".nrrd", ".mha"):
        assert_same_voxels_at_same_points(volume, read_volume(write_volume(volume, folder / f"v{suffix}")))


def write_dicom_series(volume: Volume, folder):
    """Write a volume as a DICOM series with its exact geometry (LPS in the DICOM tags)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = volume_to_sitk(volume)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.42"
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "MR", "0020|000e": series_uid, "0020|000d": series_uid + ".0",
            "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
            "0020|0037": "\\".join(repr(float(v)) for v in (*direction[:, 0], *direction[:, 1])),
            "0020|0032": "\\".join(repr(float(v)) for v in position),
            "0028|0030": "\\".join(repr(float(v)) for v in (image.GetSpacing()[1], image.GetSpacing()[0])),
            "0018|0050": repr(float(image.GetSpacing()[2])),
        }
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_image)


def test_dicom_series_round_trip_keeps_every_voxel_at_its_point(tmp_path):
    volume = oblique_permuted_volume()
    write_dicom_series(volume, tmp_path / "series")
    assert_same_voxels_at_same_points(volume, read_volume(tmp_path / "series"))


@pytest.mark.parametrize("array_shape", [(5, 6), (2, 3, 4, 5)])
def test_non_3d_images_are_refused(tmp_path, array_shape):
    path = tmp_path / "bad.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros(array_shape, np.int16), isVector=False), str(path))
    with pytest.raises(DBSInputError, match="3D"):
        read_volume(path)


def test_missing_empty_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(DBSInputError, match="not found"):
        read_volume(tmp_path / "nothing.nii.gz")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(DBSInputError, match="empty"):
        read_volume(tmp_path / "empty.nii.gz")
    (tmp_path / "corrupt.nrrd").write_bytes(b"this is not an image\n" * 10)
    with pytest.raises(DBSInputError, match="cannot read image"):
        read_volume(tmp_path / "corrupt.nrrd")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DBSInputError, match="no DICOM series"):
        read_volume(tmp_path / "folder")


def test_failed_write_leaves_nothing_and_keeps_an_earlier_file(tmp_path, monkeypatch):
    volume = oblique_permuted_volume()
    path = write_volume(volume, tmp_path / "labels.nrrd")
    before = path.read_bytes()
    with pytest.raises(DBSInputError):
        write_volume(volume, tmp_path / "labels.mhd")  # a two-file format is refused up front

    def write_half_then_fail(image, file_name, *args):
        with open(file_name, "wb") as stream:
            stream.write(b"NRRD0004\npartial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_volume(volume, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nrrd"]
