"""Frame registration benchmark (issue 14): transform error, residuals and time of `dbs-plan frame-register`.

    .venv/bin/python benchmarks/benchmark_frame_registration.py [--quick] [--figure docs/figures/x.png]

Each case is a synthetic frame CT or MRI (DBSSegmentationLogic.simulation.frame_ct: head phantom inside
the Leksell G localizer preset, rods with partial volume, thick slices, noise, speckles, metal pins)
under a known pose, written as NIfTI. Beyond the issue's cases, two configurations (three seeds each) draw
the rods 0.25 mm (SD per axis and end) off the nominal geometry the registration uses, as a real
localizer's manufacturing or mounting tolerance would put them. The command runs in its own process (as the Slicer module runs
it); from its frame_registration.json the benchmark takes ``image_to_frame_ras`` and the fiducial
table, and compares them with the truth:

- transform error: largest and mean distance between the found and the true image->frame maps over a
  ball of 60 mm radius around the frame centre (largest on its surface);
- residuals: the reported RMS residual, and the RMS of the same fiducials' residuals under the true
  transform (what the reported number should be);
- seconds: the command's wall time (Python start, reading, detection, fit, figure, writing).

Refusal cases (a geometry file with the lateral plates 10 mm too far apart, a head CT without a
localizer, a post-operative CT with leads) must exit 2 with one line on stderr.
Prints a Markdown table and writes benchmarks/results/frame_registration_benchmark.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from DBSSegmentationLogic.frame_registration import load_localizer  # noqa: E402
from DBSSegmentationLogic.frame_registration.localizer_geometry import PRESETS  # noqa: E402
from DBSSegmentationLogic.frame_registration.rigid_fit import transform_error_mm  # noqa: E402
from DBSSegmentationLogic.geometry.frame import frame_ras_from_leksell  # noqa: E402
from DBSSegmentationLogic.io.volumes import write_volume  # noqa: E402
from DBSSegmentationLogic.simulation import synthetic_ct  # noqa: E402
from DBSSegmentationLogic.simulation.frame_ct import make_frame_image  # noqa: E402

GEOMETRY = load_localizer("leksell-g")
SHIFT = (4.0, -6.0, 7.0)

CASES = [
    ("CT 0.49 mm px (512²), 1 mm slices, tilt 10° about R", dict(in_plane_mm=250 / 512, slice_mm=1.0,
                                                                   tilt_deg=(10, 0, 0), fov_mm=(250, 250))),
    ("CT 0.49 mm px (512²), 0.6 mm slices, tilt (4, -3, 2)° (the largest grid)",
     dict(in_plane_mm=250 / 512, slice_mm=0.6, tilt_deg=(4, -3, 2), fov_mm=(250, 250), s_range_mm=(-70, 80))),
    ("CT 1 mm px, 1 mm slices, tilt 10° about A, anterior plate missing",
     dict(in_plane_mm=1.0, slice_mm=1.0, tilt_deg=(0, 10, 0), missing_plates=("anterior",))),
    ("CT 1 mm px, 2 mm slices, tilt (6, -6, 4)°", dict(in_plane_mm=1.0, slice_mm=2.0, tilt_deg=(6, -6, 4))),
    ("CT 1 mm px, 2 mm slices, tilt (-7, 5, 3)°, left plate missing, noise x2",
     dict(in_plane_mm=1.0, slice_mm=2.0, tilt_deg=(-7, 5, 3), missing_plates=("left",), noise=2.0)),
    ("CT 1.5 mm px, 2 mm slices, rods partly outside the FOV (in-plane and 30 mm of scan range)",
     dict(in_plane_mm=1.5, slice_mm=2.0, tilt_deg=(4, -3, 2), fov_mm=(205, 230), fov_centre_mm=(12, -10),
          s_range_mm=(-40, 78))),
    ("CT 1 mm px, 3 mm slices, tilt 10° about A", dict(in_plane_mm=1.0, slice_mm=3.0, tilt_deg=(0, 10, 0))),
    ("CT 1 mm px, 0.5 mm slices, tilt (3, 2, -5)°", dict(in_plane_mm=1.0, slice_mm=0.5, tilt_deg=(3, 2, -5),
                                                         s_range_mm=(-65, 65))),
    ("MRI 1 mm px, 2 mm slices, tilt (5, 5, 5)°", dict(modality="mri", in_plane_mm=1.0, slice_mm=2.0,
                                                       tilt_deg=(5, 5, 5))),
    ("MRI 1.5 mm px, 3 mm slices, tilt (-8, 3, 0)°, noise x2", dict(modality="mri", in_plane_mm=1.5, slice_mm=3.0,
                                                                    tilt_deg=(-8, 3, 0), noise=2.0)),
    ("MRI 1.5 mm px, 2 mm slices, 4 mm rods (geometry says 2 mm), tilt (5, -3, 2)°",
     dict(modality="mri", in_plane_mm=1.5, slice_mm=2.0, tilt_deg=(5, -3, 2), rod_diameter_mm=4.0)),
]
#: Beyond the issue's cases: the rods drawn 0.25 mm (SD per axis and end) off the nominal geometry.
TOLERANCE_CASES = [
    ("CT 1 mm px, 2 mm slices, tilt (6, -6, 4)°, rods built 0.25 mm off the geometry",
     dict(in_plane_mm=1.0, slice_mm=2.0, tilt_deg=(6, -6, 4), rod_error_mm=0.25)),
    ("CT 1 mm px, 1 mm slices, tilt 10° about R, anterior plate missing, rods 0.25 mm off",
     dict(in_plane_mm=1.0, slice_mm=1.0, tilt_deg=(10, 0, 0), missing_plates=("anterior",), rod_error_mm=0.25)),
]
QUICK = {0, 3, 4, 8, 11, 12}


def run_command(image: Path, localizer: str, out: Path) -> tuple[int, float, str]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "DBSSegmentationLogic", "frame-register", "--image", str(image), "--localizer", localizer,
         "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    return completed.returncode, time.perf_counter() - started, completed.stderr.strip()


def true_rms(report: dict, truth: np.ndarray) -> float:
    """RMS of the reported fiducials' residuals under the true transform (same definitions as the fit)."""
    residuals = []
    for row in report["fiducials"]:
        mapped = truth[:3, :3] @ np.array(row["image_ras"]) + truth[:3, 3]
        if row["kind"] == "diagonal":
            residuals.append(np.linalg.norm(mapped - frame_ras_from_leksell(row["leksell_xyz"])))
        else:
            start, end = GEOMETRY.rods[row["rod"]]
            direction = (end - start) / np.linalg.norm(end - start)
            offset = mapped - start
            residuals.append(np.linalg.norm(offset - (offset @ direction) * direction))
    # image_ras in the table is rounded to 1 µm: negligible here.
    return float(np.sqrt(np.mean(np.square(residuals))))


def wrong_geometry_file(folder: Path) -> Path:
    document = json.loads(PRESETS["leksell-g"].read_text(encoding="utf-8"))
    for rod, ends in document["rods"].items():
        for point in ends:
            point[0] += -5.0 if rod.startswith("right") else 5.0 if rod.startswith("left") else 0.0
    path = folder / "plates_10mm_too_far_apart.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="four cases only")
    parser.add_argument("--figure", type=Path, help="copy the first case's figure here")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "benchmarks" / "results" /
                        "frame_registration_benchmark.json")
    args = parser.parse_args()
    rows, refusals = [], []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        runs = [(index, name, options, index) for index, (name, options) in enumerate(CASES)]
        # Rods built off the geometry: three seeds of each, as the error depends on the draw.
        runs += [(index, name + f" (seed {seed})", options, seed) for index, (name, options) in enumerate(TOLERANCE_CASES,
                                                                                                      len(CASES))
                 for seed in (0, 1, 2)]
        for index, name, options, seed in runs:
            if args.quick and index not in QUICK:
                continue
            simulated = make_frame_image(GEOMETRY, translation_mm=SHIFT, speckles=300, seed=seed, **options)
            image = write_volume(simulated.volume, folder / f"case{index}.nii.gz")
            out = folder / f"out{index}"
            code, seconds, error = run_command(image, "leksell-g", out)
            row = {"case": name, "shape_kji": list(simulated.volume.array.shape), "exit": code,
                   "seconds": round(seconds, 2), "issue_target_case": index < len(CASES)}
            if code == 0:
                report = json.loads((out / "frame_registration.json").read_text(encoding="utf-8"))
                worst, mean = transform_error_mm(np.array(report["image_to_frame_ras"]), simulated.image_to_frame_ras)
                row.update(error_max_mm=round(worst, 3), error_mean_mm=round(mean, 3),
                           rms_reported_mm=round(report["rms_residual_mm"], 3),
                           rms_truth_mm=round(true_rms(report, simulated.image_to_frame_ras), 3),
                           max_residual_mm=round(report["max_residual_mm"], 2), slices_used=report["slices_used"],
                           fiducials=len(report["fiducials"]), n_localizers=report["n_localizers_found"])
                if args.figure and not args.figure.exists():
                    args.figure.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(out / "frame_registration.png", args.figure)
            else:
                row["error"] = error
            rows.append(row)
            print(json.dumps(row), flush=True)

        frame_ct = make_frame_image(GEOMETRY, in_plane_mm=1.0, slice_mm=2.0, tilt_deg=(5, -3, 2), translation_mm=SHIFT,
                                    speckles=300, seed=20)
        image = write_volume(frame_ct.volume, folder / "frame.nii.gz")
        head = make_frame_image(GEOMETRY, in_plane_mm=1.0, slice_mm=2.0, rods=False, speckles=300, seed=21)
        postop = synthetic_ct.make_postop_ct(
            [dict(side="left", tip=(-12, -3, -4), entry=(-35, 40, 70)),
             dict(side="right", tip=(12, -3, -4), entry=(35, 40, 70))],
            spacing_mm=1.0, slice_thickness_mm=1.0, field_of_view_mm=(200, 230, 170))
        for name, path, localizer in (
            ("frame CT, geometry with the lateral plates 10 mm too far apart", image, str(wrong_geometry_file(folder))),
            ("head CT without a localizer", write_volume(head.volume, folder / "head.nii.gz"), "leksell-g"),
            ("post-operative CT with two leads, no localizer", write_volume(postop.volume, folder / "postop.nii.gz"),
             "leksell-g"),
        ):
            code, seconds, error = run_command(path, localizer, folder / "refused")
            refusal = {"case": name, "exit": code, "seconds": round(seconds, 2), "stderr_lines": len(error.splitlines()),
                       "stderr": error}
            refusals.append(refusal)
            print(json.dumps(refusal), flush=True)

    hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, Python {platform.python_version()}"
    print(f"\nHardware: {hardware}\n")
    print("| case | grid (k×j×i) | transform error max / mean (mm) | RMS residual reported / truth (mm) | max residual (mm) | slices | seconds |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        grid = "×".join(map(str, row["shape_kji"]))
        if row["exit"] == 0:
            print(f"| {row['case']} | {grid} | {row['error_max_mm']:.3f} / {row['error_mean_mm']:.3f} | "
                  f"{row['rms_reported_mm']:.3f} / {row['rms_truth_mm']:.3f} | {row['max_residual_mm']:.2f} | "
                  f"{row['slices_used']} | {row['seconds']:.1f} |")
        else:
            print(f"| {row['case']} | {grid} | exit {row['exit']}: {row['error']} | | | | {row['seconds']:.1f} |")
    print("\n| refusal case | exit | stderr lines | seconds | message |\n|---|---|---|---|---|")
    for refusal in refusals:
        print(f"| {refusal['case']} | {refusal['exit']} | {refusal['stderr_lines']} | {refusal['seconds']:.1f} | "
              f"{refusal['stderr']} |")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"hardware": hardware, "cases": rows, "refusals": refusals}, indent=2) + "\n",
                            encoding="utf-8")
    def met(row):
        return (row["exit"] == 0 and row["error_max_mm"] <= 0.3 and abs(row["rms_reported_mm"] - row["rms_truth_mm"]) <= 0.1
                and row["seconds"] <= 30)

    ok = all(met(row) for row in rows if row["issue_target_case"]) and all(
        r["exit"] == 2 and r["stderr_lines"] == 1 for r in refusals)
    print(f"\nissue-14 targets met on its cases (and the refusals): {ok}")
    print("targets met on the rods-off-geometry cases: "
          f"{sum(met(row) for row in rows if not row['issue_target_case'])} of "
          f"{sum(not row['issue_target_case'] for row in rows)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
