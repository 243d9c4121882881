"""Bad inputs to every command, one table: exit code 2, exactly one line on stderr (captured at the file
descriptor, so a library printing straight to the C stderr is caught too) naming the problem, nothing
left in the output location, an earlier result there byte-identical, and the inputs' SHA-256 unchanged.

Each class of issue #11 has rows (damaged files, sheared grids, coarse voxels, constant images,
unwritable or clashing outputs, missing optional packages), beside the refusals that existed before
(landmarks, markups, transforms, plans, CT checks). Refusals that need a full fusion or segmentation run
are tested in test_postop_command.py and test_segmentation_command.py. Everything here uses small
synthetic volumes or the bundled sample case, so the module runs on a fresh clone in seconds.
"""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO_ROOT, SAMPLE_CASE

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.io import staged_output
from DBSSegmentationLogic.io.exceptions import EXIT_BAD_INPUT, DBSInputError
from DBSSegmentationLogic.io.markups import find_landmarks, read_markups_points
from DBSSegmentationLogic.io.volumes import Volume, read_volume, write_volume

LANDMARKS = find_landmarks(read_markups_points(SAMPLE_CASE / "landmarks.mrk.json"))


def _sha256_tree(folder):
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir")
            for path in sorted(folder.rglob("*"))}


def _head(shape=(48, 56, 52), spacing=(2.0, 2.0, 2.0), dtype=np.int16, seed=0):
    """A small synthetic 'head': an ellipsoid with texture, on a given grid."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    centre = (np.array(shape) - 1) / 2
    inside = ((k - centre[0]) / (0.45 * shape[0])) ** 2 + ((j - centre[1]) / (0.45 * shape[1])) ** 2 \
        + ((i - centre[2]) / (0.45 * shape[2])) ** 2 < 1
    array = (inside * (400 + 100 * rng.random(shape))).astype(dtype)
    matrix = np.diag([*spacing, 1.0])
    matrix[:3, 3] = -(np.array(shape[::-1]) - 1) / 2 * np.array(spacing)
    return Volume(array, matrix)


def _ct(shape=(40, 48, 48), spacing=(2.0, 2.0, 2.0)):
    volume = _head(shape, spacing)
    array = np.where(volume.array > 0, 40, -1000).astype(np.int16)
    array[:, :, :3] = 1500  # some bone
    return volume.with_array(array)


def _truncate(source, target, fraction=0.5):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _write_dicom_series(volume, folder):
    folder.mkdir()
    image = sitk.GetImageFromArray(volume.array.astype(np.int16))
    spacing = volume.spacing_mm
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        slice_.SetSpacing((float(spacing[0]), float(spacing[1])))
        for tag, value in (("0020|000e", "1.2.826.0.1.3680043.2.1125.1.4711"), ("0008|0060", "MR"),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{k * float(spacing[2]):.3f}"), ("0018|0050", f"{spacing[2]:.3f}")):
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{k + 1:04d}.dcm"))
        writer.Execute(slice_)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Every bad (and good) input, written once; the tests check their SHA-256 never changes."""
    folder = tmp_path_factory.mktemp("inputs")
    for name in ("sample_t1w.nii.gz", "sample_labels.nii.gz", "landmarks.mrk.json"):
        shutil.copy(SAMPLE_CASE / name, folder / name)
    sample = read_volume(folder / "sample_t1w.nii.gz")
    _truncate(folder / "sample_t1w.nii.gz", folder / "truncated_uint8.nii.gz")
    small = _head()
    write_volume(small.with_array(small.array.astype(np.float32)), folder / "float.nii.gz")
    _truncate(folder / "float.nii.gz", folder / "truncated_float32.nii.gz")
    write_volume(small, folder / "plain.nii", compress=False)
    _truncate(folder / "plain.nii", folder / "truncated.nii", 0.7)
    write_volume(small, folder / "small.mha")
    _truncate(folder / "small.mha", folder / "truncated.mha")
    write_volume(small, folder / "small.nrrd")
    _truncate(folder / "small.nrrd", folder / "truncated.nrrd")
    # A gzip stream whose body is corrupt (header intact, bytes flipped in the middle).
    damaged = bytearray((folder / "sample_t1w.nii.gz").read_bytes())
    damaged[len(damaged) // 2: len(damaged) // 2 + 64] = bytes(64)
    (folder / "corrupt.nii.gz").write_bytes(bytes(damaged))
    # A sheared grid (NRRD keeps it; the NIfTI writer would straighten it).
    sheared = sitk.GetImageFromArray(small.array)
    sheared.SetSpacing((2.0, 2.0, 2.0))
    sheared.SetDirection((1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(sheared, str(folder / "sheared.nrrd"))
    sheared_labels = sitk.Cast(sheared > 450, sitk.sitkUInt8)
    sitk.WriteImage(sheared_labels, str(folder / "sheared_labels.nrrd"))
    # Voxels too coarse: 8 mm isotropic, and 1 mm in-plane with 8 mm slices.
    write_volume(_head((12, 28, 24), (8.0, 8.0, 8.0)), folder / "coarse_8mm.nii.gz")
    write_volume(_head((14, 100, 90), (1.0, 1.0, 8.0)), folder / "thick_slices.nii.gz")
    write_volume(Volume(np.zeros((20, 20, 20), np.uint8), np.diag([4.0, 4.0, 4.0, 1.0])),
                 folder / "coarse_labels.nii.gz")
    # Content.
    write_volume(sample.with_array(np.full_like(sample.array, 7)), folder / "constant.nii.gz")
    write_volume(Volume(np.arange(8 * 8 * 8, dtype=np.int16).reshape(8, 8, 8), np.eye(4)), folder / "tiny.nii.gz")
    nan = small.array.astype(np.float32)
    nan[5, 5, 5] = np.nan
    write_volume(small.with_array(nan), folder / "nan.nrrd")
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkFloat32), str(folder / "flat_2d.nii.gz"))
    (folder / "empty.nii.gz").write_bytes(b"")
    (folder / "text.nii.gz").write_text("not an image")
    (folder / "empty_dicom").mkdir()
    (folder / "junk_dicom").mkdir()
    (folder / "junk_dicom" / "IM0001.dcm").write_text("not DICOM")
    # A DICOM series with one damaged slice (GDCM drops it and ITK would stretch the rest).
    _write_dicom_series(small, folder / "dicom_ok")
    shutil.copytree(folder / "dicom_ok", folder / "dicom_damaged_slice")
    damaged_slice = sorted((folder / "dicom_damaged_slice").iterdir())[len(small.array) // 2]
    _truncate(damaged_slice, damaged_slice, 0.6)
    # CTs and a plan for the post-operative command.
    write_volume(_ct(), folder / "ct.nii.gz")
    write_volume(_ct((6, 40, 40), (2.0, 2.0, 9.0)), folder / "ct_thick.nii.gz")
    _truncate(folder / "ct.nii.gz", folder / "ct_truncated.nii.gz")
    plan = {"mri": str(folder / "sample_t1w.nii.gz"),
            "acpc": {"ac_ras": LANDMARKS["ac"].tolist(), "pc_ras": LANDMARKS["pc"].tolist(),
                     "midline_ras": LANDMARKS["midline"].tolist()},
            "trajectories": [{"side": "left", "name": "L STN", "target_ras": LANDMARKS["target"].tolist(),
                              "entry_ras": LANDMARKS["entry"].tolist()}]}
    (folder / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    (folder / "not_a_plan.json").write_text(json.dumps({"hello": 1}), encoding="utf-8")
    (folder / "not_json.json").write_text("{plan", encoding="utf-8")
    (folder / "broken.mrk.json").write_text('{"markups": [{"controlPoints": [{"label": "AC", "position": [1, 2]}]}]}')
    scaled = sitk.AffineTransform(3)
    scaled.Scale(1.05)
    sitk.WriteTransform(scaled, str(folder / "scaled.tfm"))
    (folder / "garbage.tfm").write_text("#Insight Transform File V1.0\nTransform: Nonsense\n")
    return folder


@pytest.fixture
def out(tmp_path):
    """The output location, holding an earlier result of every command (and a plain file)."""
    folder = tmp_path / "out"
    folder.mkdir()
    for name, text in (("labels.nii.gz", "earlier labels"), ("labels.json", "{}"), ("labels_colors.txt", "0 bg"),
                       ("frame.json", "{\"earlier\": 1}"), ("a_file", "a file, not a folder")):
        (folder / name).write_text(text)
    for sub, names in (("plan", ("plan.json", "report.md", "view_3d.png")), ("postop", ("postop.json", "report.md"))):
        (folder / sub).mkdir()
        for name in names:
            (folder / sub / name).write_text(f"earlier {sub}/{name}")
    return folder


def _points(*names):
    return [value for name in names for value in (f"--{name}", *(f"{v:.3f}" for v in LANDMARKS[name]))]


def _frame(*extra, points=("ac", "pc", "midline", "target", "entry")):
    return ["frame", *_points(*points), "--json", "{out}/frame.json", *extra]


def _segment(image, *extra):
    return ["segment", "--input", image, "--output", "{out}/labels.nii.gz", "--device", "cpu", *extra]


def _plan(mri="{in}/sample_t1w.nii.gz", labels="{in}/sample_labels.nii.gz", *extra):
    labels_option = ["--labels", labels] if labels else []
    return ["plan", "--mri", mri, *labels_option, "--markups", "{in}/landmarks.mrk.json", "--out", "{out}/plan", *extra]


def _postop(ct="{in}/ct.nii.gz", plan="{in}/plan.json", *extra):
    return ["postop", "--plan", plan, "--ct", ct, "--out", "{out}/postop", *extra]


#: name -> (command line with {in}/{out} placeholders, words the single stderr line must hold)
CASES = {
    # damaged files (issue #11 case 1 and its class)
    "segment: truncated uint8 .nii.gz": (_segment("{in}/truncated_uint8.nii.gz"), "truncated"),
    "segment: truncated float32 .nii.gz": (_segment("{in}/truncated_float32.nii.gz"), "truncated"),
    "segment: truncated .nii": (_segment("{in}/truncated.nii"), "truncated: it holds"),
    "segment: truncated .mha": (_segment("{in}/truncated.mha"), "data not read completely"),
    "segment: truncated .nrrd": (_segment("{in}/truncated.nrrd"), "expected"),
    "segment: corrupt gzip stream": (_segment("{in}/corrupt.nii.gz"), "damaged"),
    "plan: truncated MRI beside labels": (_plan("{in}/truncated_uint8.nii.gz"), "truncated"),
    "plan: truncated label map": (_plan(labels="{in}/truncated_uint8.nii.gz"), "truncated"),
    "postop: truncated CT": (_postop("{in}/ct_truncated.nii.gz"), "truncated"),
    "segment: empty file": (_segment("{in}/empty.nii.gz"), "empty"),
    "segment: not an image": (_segment("{in}/text.nii.gz"), "cannot read image"),
    "segment: missing file": (_segment("{in}/absent.nii.gz"), "not found"),
    "segment: empty DICOM folder": (_segment("{in}/empty_dicom"), "no DICOM series"),
    "segment: folder of non-DICOM files": (_segment("{in}/junk_dicom"), "no DICOM series"),
    "segment: DICOM series with a damaged slice": (_segment("{in}/dicom_damaged_slice"), "missing or unevenly spaced"),
    "segment: NaN voxels": (_segment("{in}/nan.nrrd"), "NaN"),
    "segment: 2D image": (_segment("{in}/flat_2d.nii.gz"), "3D"),
    # geometry (case 4)
    "segment: sheared grid": (_segment("{in}/sheared.nrrd"), "sheared grid"),
    "plan: sheared label map": (_plan("{in}/sample_t1w.nii.gz", "{in}/sheared_labels.nrrd"), "sheared grid"),
    "plan: sheared MRI beside labels": (_plan("{in}/sheared.nrrd"), "sheared grid"),
    # resolution (case 5)
    "segment: 8 mm voxels": (_segment("{in}/coarse_8mm.nii.gz"), "in-plane voxels of 8.00 x 8.00 mm"),
    "segment: 8 mm slices": (_segment("{in}/thick_slices.nii.gz"), "8.00 mm between slices"),
    "plan: segmenting 8 mm voxels": (_plan("{in}/coarse_8mm.nii.gz", None), "too coarse for segmentation"),
    "plan: 4 mm label map": (_plan(labels="{in}/coarse_labels.nii.gz"), "too coarse for planning"),
    "postop: CT with 9 mm slices": (_postop("{in}/ct_thick.nii.gz"), "too coarse for lead localization"),
    # content (case 6)
    "plan --labels: constant MRI": (_plan("{in}/constant.nii.gz"), "constant"),
    "segment: constant image": (_segment("{in}/constant.nii.gz"), "constant"),
    "segment: field of view too small": (_segment("{in}/tiny.nii.gz"), "field of view"),
    "postop: an MRI as the CT": (_postop("{in}/sample_t1w.nii.gz"), "not a CT in Hounsfield units"),
    # outputs (cases 2 and 3)
    "segment: --json under a file": (_segment("{in}/sample_t1w.nii.gz", "--json", "{out}/a_file/r.json"), "a_file is a file"),
    "segment: --output under a file": (["segment", "--input", "{in}/sample_t1w.nii.gz", "--output",
                                        "{out}/a_file/l.nii.gz"], "a_file is a file"),
    "segment: --output is a folder": (["segment", "--input", "{in}/sample_t1w.nii.gz", "--output", "{out}/plan"],
                                      "it is a folder"),
    "segment: output overwrites the input": (["segment", "--input", "{in}/sample_t1w.nii.gz", "--output",
                                              "{in}/sample_t1w.nii.gz"], "would overwrite the input"),
    "segment: --json equals --output": (_segment("{in}/sample_t1w.nii.gz", "--json", "{out}/labels.nii.gz"),
                                        "given twice"),
    "segment: unwritable format": (["segment", "--input", "{in}/sample_t1w.nii.gz", "--output", "{out}/l.png"],
                                   "cannot write image format"),
    "plan: --out under a file": (["plan", "--mri", "{in}/sample_t1w.nii.gz", "--labels", "{in}/sample_labels.nii.gz",
                                  "--markups", "{in}/landmarks.mrk.json", "--out", "{out}/a_file/plan"], "a_file is a file"),
    "plan: --out is a file": (["plan", "--mri", "{in}/sample_t1w.nii.gz", "--labels", "{in}/sample_labels.nii.gz",
                               "--markups", "{in}/landmarks.mrk.json", "--out", "{out}/a_file"], "a file of that name"),
    "postop: --out under a file": (["postop", "--plan", "{in}/plan.json", "--ct", "{in}/ct.nii.gz", "--out",
                                    "{out}/a_file/postop"], "a_file is a file"),
    "frame: --json under a file": (["frame", *_points("ac", "pc", "midline", "target", "entry"), "--json",
                                    "{out}/a_file/f.json"], "a_file is a file"),
    # refusals that existed before: landmarks, markups, transforms, options
    "frame: collinear landmarks": (["frame", *_points("ac", "pc", "target", "entry"), "--midline",
                                    *(f"{v:.3f}" for v in 2 * LANDMARKS["ac"] - LANDMARKS["pc"]),
                                    "--json", "{out}/frame.json"], "collinear"),
    "frame: AC equals PC": (["frame", *_points("ac", "midline", "target", "entry"), "--pc",
                             *(f"{v:.3f}" for v in LANDMARKS["ac"]), "--json", "{out}/frame.json"], "distinct"),
    "frame: entry equals target": (["frame", *_points("ac", "pc", "midline", "target"), "--entry",
                                    *(f"{v:.3f}" for v in LANDMARKS["target"]), "--json", "{out}/frame.json"], "distinct"),
    "frame: ring outside [0, 180]": (_frame("--ring", "190", "--arc", "90", points=("ac", "pc", "midline", "target")),
                                     "outside [0, 180]"),
    "frame: ring without arc": (_frame("--ring", "90", points=("ac", "pc", "midline", "target")), "both --ring and --arc"),
    "frame: missing landmark": (_frame(points=("ac", "pc", "target", "entry")), "missing landmark"),
    "frame: non-rigid transform": (_frame("--image-to-frame", "{in}/scaled.tfm"), "not rigid"),
    "frame: unreadable transform": (_frame("--image-to-frame", "{in}/garbage.tfm"), "cannot read transform"),
    "frame: malformed markups": (["frame", "--markups", "{in}/broken.mrk.json", "--json", "{out}/frame.json"],
                                 "no valid 3D position"),
    "frame: bad option value": (["frame", "--ac", "1", "2", "--json", "{out}/frame.json"], "expected 3 arguments"),
    "segment: partial landmarks": (_segment("{in}/sample_t1w.nii.gz", *_points("ac")), "--midline"),
    "plan: partial landmarks": (["plan", "--mri", "{in}/sample_t1w.nii.gz", "--labels", "{in}/sample_labels.nii.gz",
                                 *_points("ac"), "--out", "{out}/plan"], "all three"),
    "postop: plan not found": (_postop(plan="{in}/absent.json"), "plan not found"),
    "postop: plan not JSON": (_postop(plan="{in}/not_json.json"), "not valid JSON"),
    "postop: not a plan": (_postop(plan="{in}/not_a_plan.json"), "is not a plan written by"),
    "postop: --preop-transform without --preop-ct": (_postop("{in}/ct.nii.gz", "{in}/plan.json", "--preop-transform",
                                                             "{in}/scaled.tfm"), "needs --preop-ct"),
    "postop: unknown lead model": (_postop("{in}/ct.nii.gz", "{in}/plan.json", "--lead-model", "nope"), "invalid choice"),
}


def _run(argv, inputs, out, capfd):
    argv = [a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in argv]
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capfd.readouterr().err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exit_2_one_line_nothing_left_earlier_output_unchanged(name, inputs, out, capfd):
    argv, words = CASES[name]
    inputs_before, out_before = _sha256_tree(inputs), _sha256_tree(out.parent)
    code, err = _run(argv, inputs, out, capfd)
    lines = err.strip().splitlines()
    assert code == EXIT_BAD_INPUT, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert _sha256_tree(out.parent) == out_before  # nothing new, nothing changed, no staging left
    assert _sha256_tree(inputs) == inputs_before


@pytest.mark.parametrize("command", ["segment", "plan"])
def test_segmentation_without_torch_says_what_to_install(command, inputs, out, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    argv = _segment("{in}/sample_t1w.nii.gz") if command == "segment" else _plan(labels=None)
    before = _sha256_tree(out.parent)
    code, err = _run(argv, inputs, out, capfd)
    assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1, err
    assert 'pip install "dbs-targeting[segmentation]"' in err
    assert ("or give --labels" in err) == (command == "plan")
    assert _sha256_tree(out.parent) == before


# ------------------------------------------------------------------------ the gate, piece by piece
def test_truncated_nifti_is_refused_before_itk_zero_fills_it(inputs):
    """ITK itself reads the short file without error (the missing half is zeros): the gate must not."""
    image = sitk.ReadImage(str(inputs / "truncated_uint8.nii.gz"))
    full = sitk.ReadImage(str(inputs / "sample_t1w.nii.gz"))
    zeros = lambda img: float((sitk.GetArrayViewFromImage(img) == 0).mean())  # noqa: E731
    assert zeros(image) > zeros(full) + 0.1
    with pytest.raises(DBSInputError, match="truncated"):
        read_volume(inputs / "truncated_uint8.nii.gz")
    # An intact file passes, bit for bit what ITK reads.
    assert np.array_equal(read_volume(inputs / "sample_t1w.nii.gz").array, sitk.GetArrayFromImage(full))


def test_intact_dicom_series_reads_with_its_slices_and_spacing(inputs):
    volume = read_volume(inputs / "dicom_ok")
    assert volume.array.shape == _head().array.shape
    assert np.allclose(volume.spacing_mm, [2.0, 2.0, 2.0], atol=1e-3)


def test_sheared_grid_cannot_be_written_to_nifti_but_is_kept_exactly_in_nrrd(tmp_path, capfd):
    """The class behind case 4: a file format that cannot hold the grid is refused at writing, so no
    label map ever lands elsewhere than its volume says."""
    volume = _head()
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, :3] = matrix[:3, :3] @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    sheared = Volume(volume.array, matrix)
    with pytest.raises(DBSInputError, match="cannot hold this grid exactly"):
        write_volume(sheared, tmp_path / "labels.nii.gz")
    assert list(tmp_path.iterdir()) == []
    write_volume(sheared, tmp_path / "labels.nrrd")
    assert np.allclose(read_volume(tmp_path / "labels.nrrd").ijk_to_ras, matrix, atol=1e-9)


def test_orthonormal_tolerance_and_voxel_limits():
    from DBSSegmentationLogic.io.input_checks import check_geometry, check_voxel_size

    volume = _head()
    nearly = volume.ijk_to_ras.copy()
    nearly[0, 1] = 2e-5  # rounding in a DICOM header: accepted
    check_geometry(Volume(volume.array, nearly))
    nearly[0, 1] = 2.0 * 2e-3  # 0.11° off perpendicular: refused
    with pytest.raises(DBSInputError, match="sheared"):
        check_geometry(Volume(volume.array, nearly))
    for spacing, ok in (((3.0, 3.0, 6.0), True), ((3.1, 1.0, 1.0), True), ((3.1, 3.1, 1.0), False),
                        ((1.0, 1.0, 6.1), False)):
        test = Volume(volume.array, np.diag([*spacing, 1.0]))
        if ok:
            check_voxel_size(test, "segmentation")
        else:
            with pytest.raises(DBSInputError, match="too coarse"):
                check_voxel_size(test, "segmentation")


# ---------------------------------------------------------------- all-or-nothing output commits
def _earlier(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(os.urandom(64))
    return _sha256_tree(folder.parent)


def test_multi_file_commit_rolls_back_when_a_move_fails(tmp_path, monkeypatch):
    """Case 2's class: outputs in two folders, the second move fails -> every earlier file is back."""
    a, b = tmp_path / "a" / "labels.nii.gz", tmp_path / "b" / "report.json"
    _earlier(a.parent, [a.name])
    _earlier(b.parent, [b.name])
    before = _sha256_tree(tmp_path)
    real_replace, calls = os.replace, []

    def failing_replace(source, target):
        calls.append((source, target))
        if len(calls) == 4:  # backup a, place a, backup b, then fail placing b
            raise OSError(28, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(staged_output.os, "replace", failing_replace)
    with pytest.raises(OSError):
        with staged_output.staged_files([a, b]) as staged:
            staged[a].write_text("new labels")
            staged[b].write_text("new report")
    monkeypatch.setattr(staged_output.os, "replace", real_replace)
    assert _sha256_tree(tmp_path) == before


def test_multi_file_commit_cancelled_or_incomplete_changes_nothing(tmp_path):
    a, b = tmp_path / "a" / "labels.nii.gz", tmp_path / "new" / "deeper" / "report.json"
    _earlier(a.parent, [a.name])
    before = _sha256_tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with staged_output.staged_files([a, b]) as staged:
            staged[a].write_text("new labels")
            raise KeyboardInterrupt
    assert _sha256_tree(tmp_path) == before  # the folders it created are gone again
    with pytest.raises(RuntimeError, match="not produced"):
        with staged_output.staged_files([a, b]) as staged:
            staged[a].write_text("new labels")  # b never written
    assert _sha256_tree(tmp_path) == before
    with staged_output.staged_files([a, b]) as staged:
        staged[a].write_text("new labels")
        staged[b].write_text("new report")
    assert a.read_text() == "new labels" and b.read_text() == "new report"
    assert sorted(p.name for p in a.parent.iterdir()) == ["labels.nii.gz"]  # no backup or staging left


def test_output_folder_commit_rolls_back_and_removes_created_folders(tmp_path, monkeypatch):
    out = tmp_path / "plan"
    _earlier(out, ["plan.json", "report.md"])
    before = _sha256_tree(tmp_path)
    real_replace, calls = os.replace, []

    def failing_replace(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real_replace(source, target)

    monkeypatch.setattr(staged_output.os, "replace", failing_replace)
    with pytest.raises(OSError):
        with staged_output.staged_output_folder(out) as staging:
            for name in ("plan.json", "report.md", "figure.png"):
                (staging / name).write_text("new")
    monkeypatch.setattr(staged_output.os, "replace", real_replace)
    assert _sha256_tree(tmp_path) == before
    with pytest.raises(KeyboardInterrupt):
        with staged_output.staged_output_folder(tmp_path / "x" / "y" / "plan") as staging:
            (staging / "plan.json").write_text("new")
            raise KeyboardInterrupt
    assert _sha256_tree(tmp_path) == before


# --------------------------------------------------------------------- library messages, platforms
def test_plan_without_display_prints_nothing_on_stderr(inputs, tmp_path):
    """Case 7: no stray library line (VTK's "bad X server connection" before its EGL fallback) and no X
    server needed: the 3D view is drawn off-screen, or skipped with a note in the report."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBS_DEBUG")}
    out = tmp_path / "plan"
    result = subprocess.run(
        [sys.executable, "-m", "DBSSegmentationLogic", "plan", "--mri", str(inputs / "sample_t1w.nii.gz"),
         "--labels", str(inputs / "sample_labels.nii.gz"), "--markups", str(inputs / "landmarks.mrk.json"),
         "--out", str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = (out / "report.md").read_text(encoding="utf-8")
    assert (out / "view_3d.png").exists() != ("3D view skipped" in report)


def test_library_messages_go_to_the_debug_log_not_stderr(inputs, capfd, caplog):
    """MetaIO prints its reason to the C stderr; ITK's GDCM warns on an empty folder: both captured."""
    import logging

    from DBSSegmentationLogic.io import library_output

    library_output.quiet_libraries()
    with caplog.at_level(logging.DEBUG, logger="DBSSegmentationLogic.library"):
        with pytest.raises(DBSInputError, match="data not read completely"):
            read_volume(inputs / "truncated.mha")
    assert capfd.readouterr().err == ""
    assert any("data not read completely" in record.getMessage() for record in caplog.records)


def test_3d_view_without_vtk_is_skipped_with_the_install_line(monkeypatch):
    from DBSSegmentationLogic.planning import report

    monkeypatch.setitem(sys.modules, "vtk", None)
    volume = _head()
    path, reason = report.render_3d_or_reason(volume.with_array((volume.array > 450).astype(np.uint8)), [], "x.png")
    assert path is None and 'pip install "dbs-targeting[report]"' in reason


def test_postop_runs_without_the_resource_module():
    """Issue #12 item 6: `resource` is Unix only; without it every command must still run (Windows)."""
    code = (
        "import sys\n"
        "sys.modules['resource'] = None\n"
        "from DBSSegmentationLogic.cli import postop\n"
        "assert postop.resource is None and postop.peak_memory_mb() is None\n"
        "from DBSSegmentationLogic.cli.main import main\n"
        f"sys.exit(main(['frame', {', '.join(repr(a) for a in _points('ac', 'pc', 'midline', 'target', 'entry'))}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Arc" in result.stdout


@pytest.mark.parametrize("platform, maxrss, expected_mb", [("linux", 3 * 1024 * 1024, 3072.0),
                                                            ("darwin", 3 * 1024 * 1024, 3.0)])
def test_peak_memory_units_per_platform(monkeypatch, platform, maxrss, expected_mb):
    """ru_maxrss is kB on Linux and bytes on macOS."""
    from types import SimpleNamespace

    from DBSSegmentationLogic.cli import postop

    fake = SimpleNamespace(RUSAGE_SELF=0, getrusage=lambda who: SimpleNamespace(ru_maxrss=maxrss))
    monkeypatch.setattr(postop, "resource", fake)
    monkeypatch.setattr(postop.sys, "platform", platform)
    assert postop.peak_memory_mb() == expected_mb


def test_gzip_check_reads_multi_member_and_exact_files(tmp_path):
    """No false alarm: an intact file, and one whose gzip stream has trailing members, both pass."""
    from DBSSegmentationLogic.io.input_checks import check_file_integrity

    volume = _head()
    write_volume(volume, tmp_path / "ok.nii", compress=False)
    raw = (tmp_path / "ok.nii").read_bytes()
    with gzip.open(tmp_path / "two_members.nii.gz", "wb") as handle:
        handle.write(raw[: len(raw) // 2])
    with gzip.open(tmp_path / "two_members.nii.gz", "ab") as handle:
        handle.write(raw[len(raw) // 2:])
    check_file_integrity(tmp_path / "ok.nii")
    check_file_integrity(tmp_path / "two_members.nii.gz")
    assert np.array_equal(read_volume(tmp_path / "two_members.nii.gz").array, volume.array)


def test_plan_with_labels_needs_neither_torch_nor_vtk(inputs, tmp_path):
    """`pip install dbs-targeting` (no extras) gives a working `plan --labels`: no torch import anywhere
    on that path, and without VTK the 3D view is skipped with a note in the report."""
    out = tmp_path / "plan"
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['vtk'] = None\n"
        "from DBSSegmentationLogic.cli.main import main\n"
        f"sys.exit(main(['plan', '--mri', {str(inputs / 'sample_t1w.nii.gz')!r}, '--labels', "
        f"{str(inputs / 'sample_labels.nii.gz')!r}, '--markups', {str(inputs / 'landmarks.mrk.json')!r}, "
        f"'--out', {str(out)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "note: 3D view skipped: VTK is not installed" in result.stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert '3D view skipped: VTK is not installed (pip install "dbs-targeting[report]")' in report
    assert not (out / "view_3d.png").exists() and (out / "plan.json").exists()


def test_cancelled_plan_leaves_the_earlier_plan_byte_identical(inputs, out):
    """SIGTERM (the Slicer module's cancel) while the figures are being staged: exit 130, the earlier
    plan folder unchanged, no staging folder left."""
    import signal

    before = _sha256_tree(out.parent)
    process = subprocess.Popen(
        [sys.executable, "-m", "DBSSegmentationLogic", "plan", "--mri", str(inputs / "sample_t1w.nii.gz"),
         "--labels", str(inputs / "sample_labels.nii.gz"), "--markups", str(inputs / "landmarks.mrk.json"),
         "--out", str(out / "plan")], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8")
    for line in process.stdout:
        if line.startswith("PROGRESS 0.75"):
            process.send_signal(signal.SIGTERM)
            break
    process.stdout.read()
    process.wait(timeout=300)
    assert process.returncode == 130, process.stderr.read()
    assert process.stderr.read().strip() == "cancelled"
    assert _sha256_tree(out.parent) == before
