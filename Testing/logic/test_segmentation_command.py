"""The ``segment`` background-process command: outputs, progress, exit codes, bad input, cancel."""
import json
import signal
import subprocess
import sys

import numpy as np
import SimpleITK as sitk
from conftest import REPO_ROOT, SAMPLE_CASE

from DBSSegmentationLogic.cli.main import main
from DBSSegmentationLogic.io.markups import find_landmarks, read_markups_points
from DBSSegmentationLogic.io.volumes import Volume, read_volume, write_volume

# The repository's own sample case (CIT168 head turned in the scanner): runs on a fresh clone.
TEMPLATE = SAMPLE_CASE / "sample_t1w.nii.gz"
_LANDMARKS = find_landmarks(read_markups_points(SAMPLE_CASE / "landmarks.mrk.json"))
TEMPLATE_LANDMARKS = [value for name in ("ac", "pc", "midline")
                      for value in (f"--{name}", *(f"{v:.3f}" for v in _LANDMARKS[name]))]


def _segment(tmp_path, input_path, *extra):
    output = tmp_path / "out" / "labels.nii.gz"
    code = main(["segment", "--input", str(input_path), "--output", str(output), "--device", "cpu", *extra])
    return code, output


def test_success_writes_labels_table_and_report(tmp_path, capsys):
    code, output = _segment(tmp_path, TEMPLATE, *TEMPLATE_LANDMARKS)
    stdout = capsys.readouterr().out
    assert code == 0
    progress = [line for line in stdout.splitlines() if line.startswith("PROGRESS ")]
    fractions = [float(line.split()[1]) for line in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "PROGRESS 0.55 segmenting" in progress
    labels = read_volume(output)
    source = read_volume(TEMPLATE)
    assert labels.array.shape == source.array.shape and np.allclose(labels.ijk_to_ras, source.ijk_to_ras)
    report = json.loads((output.parent / "labels.json").read_text())
    assert [s["name"] for s in report["structures"]][:2] == ["STN_left", "STN_right"]
    stn_left = report["structures"][0]
    assert stn_left["centroid_acpc"][0] < -8 and stn_left["centroid_acpc_clinical"]["side"] == "left"
    assert 100 < stn_left["volume_mm3"] < 400
    table = (output.parent / "labels_colors.txt").read_text().splitlines()
    assert table[2].startswith("1 STN_left ")
    assert sorted(p.name for p in output.parent.iterdir()) == ["labels.json", "labels.nii.gz", "labels_colors.txt",
                                                               "labels_uncertainty.nii.gz"]
    uncertainty = read_volume(output.parent / "labels_uncertainty.nii.gz")
    assert uncertainty.array.shape == source.array.shape and np.allclose(uncertainty.ijk_to_ras, source.ijk_to_ras)
    assert 0.0 <= uncertainty.array.min() and uncertainty.array.max() <= 1.0
    assert all(0.0 < s["confidence"] <= 1.0 for s in report["structures"])
    assert report["outputs"]["uncertainty"].endswith("labels_uncertainty.nii.gz")


def _write(tmp_path, name, image: sitk.Image):
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def _bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    template = read_volume(TEMPLATE)
    nan = template.array.astype(np.float32)
    nan[80, 100, 80] = np.nan
    noise = rng.uniform(0, 100, (80, 90, 70)).astype(np.float32)
    top_slab = template.array[135:, :, :]  # more than 40 mm above the AC-PC plane: no basal ganglia
    top_matrix = template.ijk_to_ras.copy()
    top_matrix[:3, 3] = template.ijk_to_ras_points([0, 0, 135])
    image_2d = sitk.Image(64, 64, sitk.sitkFloat32)
    image_4d = sitk.JoinSeries([sitk.Cast(sitk.ReadImage(str(TEMPLATE)), sitk.sitkFloat32)] * 2)
    return {
        "2D image": (_write(tmp_path, "flat.nii.gz", image_2d), "3D"),
        "4D image": (_write(tmp_path, "series.nii.gz", image_4d), "3D"),
        "constant": (write_volume(Volume(np.full((60, 60, 60), 7, np.int16), np.eye(4) * [2, 2, 2, 1]),
                                  tmp_path / "constant.nii.gz"), "constant"),
        # NRRD: SimpleITK reads NaN in NIfTI files back as 0, so NaN input can only arrive in NRRD/MHA
        "NaN": (write_volume(Volume(nan, template.ijk_to_ras), tmp_path / "nan.nrrd"), "NaN"),
        "no brain": (write_volume(Volume(noise, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "noise.nii.gz"), "brain"),
        "FOV without basal ganglia": (write_volume(Volume(top_slab, top_matrix), tmp_path / "top.nii.gz"),
                                      "basal ganglia"),
        "missing file": (tmp_path / "absent.nii.gz", "not found"),
    }


def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tmp_path, capsys):
    for problem, (path, words) in _bad_inputs(tmp_path).items():
        code, output = _segment(tmp_path, path)
        stderr = capsys.readouterr().err.strip()
        assert code == 2, (problem, stderr)
        assert len(stderr.splitlines()) == 1 and words in stderr, (problem, stderr)
        assert not output.parent.exists() or not any(output.parent.iterdir()), problem


def test_partial_landmarks_and_missing_cuda_are_bad_input(tmp_path, capsys):
    code, _ = _segment(tmp_path, TEMPLATE, "--ac", "0", "2", "-4")
    assert code == 2 and "--midline" in capsys.readouterr().err
    import torch
    if not torch.cuda.is_available():
        output = tmp_path / "o.nii.gz"
        assert main(["segment", "--input", str(TEMPLATE), "--output", str(output), "--device", "cuda"]) == 2
        assert "cuda" in capsys.readouterr().err.lower() and not output.exists()


def test_cancel_exits_130_and_leaves_nothing(tmp_path):
    output = tmp_path / "out" / "labels.nii.gz"
    process = subprocess.Popen([sys.executable, "-m", "DBSSegmentationLogic", "segment", "--input", str(TEMPLATE),
                                "--output", str(output)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("PROGRESS 0.10"):
            process.send_signal(signal.SIGTERM)
            break
    process.wait(timeout=60)
    assert process.returncode == 130, process.stderr.read()
    assert not output.parent.exists() or not any(output.parent.iterdir())


def test_an_atlas_placed_away_from_the_anatomy_is_refused_not_labelled(tmp_path, capsys):
    """Landmarks 30 mm too high put the atlas where the image holds other anatomy (as a failed automatic
    localization does): the case is refused with exit 2 and one line, and nothing is written; the same
    landmarks in place give the ordinary result with its measured atlas information in the report."""
    shifted = [value for name in ("ac", "pc", "midline")
               for value in (f"--{name}", *(f"{v:.3f}" for v in _LANDMARKS[name] + np.array([0.0, 0.0, 30.0])))]
    code, output = _segment(tmp_path, TEMPLATE, *shifted)
    stderr = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(stderr) == 1 and "does not match the atlas" in stderr[0] and "check the landmarks" in stderr[0]
    assert not output.parent.exists() or not any(output.parent.iterdir())

    code, output = _segment(tmp_path, TEMPLATE, *TEMPLATE_LANDMARKS)
    assert code == 0
    report = json.loads((output.parent / "labels.json").read_text())
    assert report["fit"]["atlas_information_nats"] > 0.5
