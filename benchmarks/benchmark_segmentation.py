"""Benchmark of the segmentation engine against template registration (CIT168 affine + BSpline).

    .venv/bin/python benchmarks/benchmark_segmentation.py --cases 10 [--out benchmarks/results]

Cases:
* held-out synthetic whole-brain cases: ``default_rng([BENCHMARK_ENTROPY, n])`` (never used in training,
  whose cases come from ``default_rng([seed, step])`` and validation from ``[1_000_003, v]``): new
  deformations and contrasts, a random pose (rotation up to 15 degrees about each axis, 10 mm shift,
  5% scaling), 1 mm in-plane and 2 mm slices along a random axis;
* the real CIT168 template (1 mm T1w, its own labels; note the model was trained from it);
* the real head (no labels): plausibility of the centroids in AC-PC space, overlay figures;
* the whole command on the real head resampled to 1 mm (wall time, peak memory of the process).

Per structure: Dice, 95% Hausdorff distance (mm), centroid error (mm); runtime per case for both methods.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from DBSSegmentationLogic.io.volumes import Volume, read_volume, volume_to_sitk  # noqa: E402
from DBSSegmentationLogic.segmentation import engine as segmentation  # noqa: E402
from DBSSegmentationLogic.segmentation import labels as label_codes  # noqa: E402
from DBSSegmentationLogic.segmentation import template  # noqa: E402
from DBSSegmentationLogic.segmentation.model import network_input  # noqa: E402
from DBSSegmentationLogic.training import synthesis  # noqa: E402

BENCHMARK_ENTROPY = 2_000_017
DATA = ROOT.parent / "shared" / "data"
NAMES = [s.name for s in label_codes.STRUCTURES]


# ----------------------------------------------------------------------------------- metrics
def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = int(prediction.sum() + truth.sum())
    return 2.0 * int((prediction & truth).sum()) / total if total else 1.0


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def hausdorff95_mm(prediction: np.ndarray, truth: np.ndarray, spacing_kji) -> float:
    if not prediction.any() or not truth.any():
        return float("inf")
    both = prediction | truth
    slices = ndimage.find_objects(both.astype(np.uint8))[0]
    slices = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in slices)
    p, t = prediction[slices], truth[slices]
    sp, st = _surface(p), _surface(t)
    to_t = ndimage.distance_transform_edt(~st, sampling=spacing_kji)
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing_kji)
    return float(np.percentile(np.concatenate([to_t[sp], to_p[st]]), 95))


def centroid_mm(mask: np.ndarray, volume: Volume) -> np.ndarray | None:
    if not mask.any():
        return None
    return volume.ijk_to_ras_points(np.argwhere(mask).mean(axis=0)[::-1])


def evaluate(prediction: np.ndarray, truth: np.ndarray, grid: Volume) -> dict:
    spacing_kji = grid.spacing_mm[::-1]
    scores = {}
    for structure in label_codes.STRUCTURES:
        p, t = prediction == structure.code, truth == structure.code
        cp, ct = centroid_mm(p, grid), centroid_mm(t, grid)
        scores[structure.name] = {
            "dice": dice(p, t), "hd95_mm": hausdorff95_mm(p, t, spacing_kji),
            "centroid_error_mm": float(np.linalg.norm(cp - ct)) if cp is not None and ct is not None else float("inf")}
    return scores


# ----------------------------------------------------------------------------------- baseline
def registration_baseline(case: Volume, template_t1: Volume, template_labels_ours: Volume,
                          template_to_case_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Warp the CIT168 labels to the case: the given affine, refined by a BSpline (Mattes MI, 4x4x4 mesh
    over the region of interest, L-BFGS-B, 2 levels); labels resampled nearest-neighbour onto the case
    grid. Returns (affine-only labels, affine + BSpline labels, BSpline seconds)."""
    fixed = sitk.Cast(volume_to_sitk(case), sitk.sitkFloat32)
    moving = sitk.Cast(volume_to_sitk(template_t1), sitk.sitkFloat32)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    case_to_template_lps = flip @ np.linalg.inv(template_to_case_ras) @ flip
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(case_to_template_lps[:3, :3].ravel().tolist())
    affine.SetTranslation(case_to_template_lps[:3, 3].tolist())
    # fixed region: the ROI box mapped into the case, as an index region of the case grid
    roi = template.roi_ijk_to_template_ras()
    size = np.array(template.ROI_SHAPE_IJK)
    corners = np.array([[a, b, c] for a in (0, size[0]) for b in (0, size[1]) for c in (0, size[2])], dtype=float)
    corners_case = case.ras_to_ijk_points((template_to_case_ras @ roi @ np.c_[corners, np.ones(8)].T).T[:, :3])
    low = np.maximum(np.floor(corners_case.min(0)).astype(int), 0)
    high = np.minimum(np.ceil(corners_case.max(0)).astype(int) + 1, np.array(case.shape_ijk))
    fixed_roi = sitk.RegionOfInterest(fixed, (high - low).tolist(), low.tolist())
    affine_only = sitk.Resample(volume_to_sitk(template_labels_ours), fixed, affine, sitk.sitkNearestNeighbor, 0)
    started = time.perf_counter()
    bspline = sitk.BSplineTransformInitializer(fixed_roi, [4, 4, 4])
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.2, 7)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=30)
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    method.SetMovingInitialTransform(affine)
    method.SetInitialTransform(bspline, inPlace=True)
    method.Execute(fixed_roi, moving)
    composite = sitk.CompositeTransform(affine)
    composite.AddTransform(bspline)
    warped = sitk.Resample(volume_to_sitk(template_labels_ours), fixed, composite, sitk.sitkNearestNeighbor, 0)
    return (sitk.GetArrayFromImage(affine_only).astype(np.uint8), sitk.GetArrayFromImage(warped).astype(np.uint8),
            time.perf_counter() - started)


# ----------------------------------------------------------------------------------- runs
def summarise(per_case: list[dict]) -> dict:
    summary = {}
    for name in NAMES:
        values = {metric: [case[name][metric] for case in per_case] for metric in ("dice", "hd95_mm", "centroid_error_mm")}
        summary[name] = {"dice_mean": float(np.mean(values["dice"])), "dice_min": float(np.min(values["dice"])),
                         "hd95_mm_mean": float(np.mean(values["hd95_mm"])),
                         "centroid_error_mm_mean": float(np.mean(values["centroid_error_mm"])),
                         "centroid_error_mm_max": float(np.max(values["centroid_error_mm"]))}
    summary["mean_dice_all"] = float(np.mean([summary[n]["dice_mean"] for n in NAMES]))
    return summary


def run_case(name: str, case: Volume, truth: np.ndarray, model, template_t1, template_labels) -> dict:
    started = time.perf_counter()
    result = segmentation.segment(case, model)
    ours_s = time.perf_counter() - started
    ours = evaluate(result.labels.array, truth, case)
    affine_labels, baseline_labels, bspline_s = registration_baseline(
        case, template_t1, template_labels, result.localization.template_to_input_ras)
    baseline_s = bspline_s + result.timings_s["localization"]
    baseline = evaluate(baseline_labels, truth, case)
    affine = evaluate(affine_labels, truth, case)
    print(f"{name}: ours {ours_s:5.1f} s mean Dice {np.mean([v['dice'] for v in ours.values()]):.3f} | "
          f"registration {baseline_s:5.1f} s mean Dice {np.mean([v['dice'] for v in baseline.values()]):.3f}",
          flush=True)
    return {"ours": ours, "baseline": baseline, "affine": affine, "ours_s": ours_s, "baseline_s": baseline_s,
            "labels": result.labels.array,
            "ours_timings_s": result.timings_s, "flags": {s.name: s.flags for s in result.structures}}


def whole_command(image_path: Path, workdir: Path) -> dict:
    """Run the CLI in a child process under GNU time: wall time and peak resident memory of the child.

    (``resource.RUSAGE_CHILDREN`` is not used: it reported the benchmark's own 2 GB for the forked child.)
    """
    output = workdir / "labels.nii.gz"
    command = [sys.executable, "-m", "DBSSegmentationLogic", "segment", "--input", str(image_path),
               "--output", str(output), "--device", "cpu"]
    timed = Path("/usr/bin/time").exists()
    started = time.perf_counter()
    completed = subprocess.run((["/usr/bin/time", "-v"] if timed else []) + command, cwd=ROOT,
                               capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    peak_mb = float("nan")
    for line in completed.stderr.splitlines():
        if "Maximum resident set size" in line:
            peak_mb = int(line.split(":")[-1]) / 1024.0
    return {"exit_code": completed.returncode, "wall_s": wall_s, "peak_rss_mb": peak_mb}


def overlay_figure(volume: Volume, labels: np.ndarray, centre_ras, path: Path, title: str) -> None:
    """Axial, coronal and sagittal slices through ``centre_ras`` resampled to 0.5 mm, with label contours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colours = np.zeros((label_codes.NUM_CLASSES, 4))
    for s in label_codes.STRUCTURES:
        colours[s.code] = [*(np.array(s.colour_rgb) / 255.0), 0.45]
    cmap = ListedColormap(colours)
    half_mm, step_mm = 35.0, 0.5
    offsets = np.arange(-half_mm, half_mm + step_mm / 2, step_mm)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    planes = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}
    for axis, (plane, (u, v)) in zip(axes, planes.items()):
        grid_u, grid_v = np.meshgrid(offsets, offsets, indexing="xy")
        points = np.tile(np.asarray(centre_ras, dtype=float), (grid_u.size, 1))
        points[:, u] += grid_u.ravel()
        points[:, v] += grid_v.ravel()
        ijk = volume.ras_to_ijk_points(points)[:, ::-1].T
        image = ndimage.map_coordinates(volume.array.astype(np.float32), ijk, order=1).reshape(grid_u.shape)
        label = ndimage.map_coordinates(labels, ijk, order=0).reshape(grid_u.shape)
        extent = [centre_ras[u] - half_mm, centre_ras[u] + half_mm, centre_ras[v] - half_mm, centre_ras[v] + half_mm]
        low, high = np.percentile(image, [1, 99.5])
        axis.imshow(image, cmap="gray", origin="lower", extent=extent, vmin=low, vmax=high)
        axis.imshow(np.ma.masked_equal(label, 0), cmap=cmap, vmin=0, vmax=label_codes.NUM_CLASSES - 1,
                    origin="lower", extent=extent, interpolation="nearest")
        axis.set_title(f"{plane} through {np.round(centre_ras[3 - u - v], 1)} mm")
        axis.set_xlabel("RAS " + "RAS"[u] + " (mm)")
        axis.set_ylabel("RAS " + "RAS"[v] + " (mm)")
    fig.suptitle(title + " — neurological view: the patient's right is on the right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def dice_figure(synthetic: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(10, 4))
    x = np.arange(len(NAMES))
    for offset, method, label in ((-0.2, "ours", "3D U-Net (this engine)"), (0.2, "baseline", "CIT168 affine + BSpline")):
        axis.bar(x + offset, [synthetic[method][n]["dice_mean"] for n in NAMES], width=0.4, label=label)
    axis.set_xticks(x)
    axis.set_xticklabels(NAMES, rotation=30)
    axis.set_ylabel("mean Dice")
    axis.set_ylim(0, 1)
    axis.axhline(0.85, color="k", lw=0.5, ls="--")
    axis.legend()
    axis.set_title("Held-out synthetic cases (random contrast, pose, deformation, 2 mm slices)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--private-figures", type=Path, default=ROOT / "logs" / "figures",
                        help="where the real-head figures go (CC BY-NC image: not shipped)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ITK threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = segmentation.load_model(device="cpu")
    t1 = read_volume(DATA / "cit168" / "cit168_t1w.nii.gz")
    cit = read_volume(DATA / "cit168" / "cit168_labels.nii.gz")
    labels_ours = cit.with_array(label_codes.cit168_to_ours(cit.array))
    generator = synthesis.LabelDrivenGenerator(t1.array, cit.array, t1.ijk_to_ras)
    box = synthesis.brain_box_ras(t1.array, t1.ijk_to_ras)
    report = {"hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                           "python": platform.python_version(), "torch": torch.__version__},
              "model": {k: model.manifest.get(k) for k in ("name", "version", "sha256")}}

    # network forward alone on the ROI
    roi_input = network_input(torch.rand(*template.roi_array_shape()), model.manifest["architecture"].get("in_channels", 1))
    with torch.no_grad():
        model.network(roi_input)
        forward = []
        for _ in range(5):
            started = time.perf_counter()
            model.network(roi_input)
            forward.append(time.perf_counter() - started)
    report["network_forward_s_median"] = float(np.median(forward))
    print(f"network forward on the ROI: {np.median(forward):.3f} s (median of 5)", flush=True)

    per_case = []
    for n in range(args.cases):
        rng = np.random.default_rng([BENCHMARK_ENTROPY, n])
        (image, matrix), (truth, _), _ = synthesis.synthesize_case(generator, rng, box)
        case = Volume(image, matrix)
        result = run_case(f"synthetic {n} spacing {np.round(case.spacing_mm, 1).tolist()}", case, truth, model, t1, labels_ours)
        per_case.append(result)
        if n == 0:
            centre = centroid_mm(truth == label_codes.BY_NAME["STN_left"].code, case)
            overlay_figure(case, result.pop("labels"), centre, args.figures / "segmentation_synthetic_case0.png",
                           "held-out synthetic case 0: network labels")
        result.pop("labels", None)
    synthetic = {"ours": summarise([c["ours"] for c in per_case]),
                 "baseline": summarise([c["baseline"] for c in per_case]),
                 "affine": summarise([c["affine"] for c in per_case]),
                 "ours_s_mean": float(np.mean([c["ours_s"] for c in per_case])),
                 "baseline_s_mean": float(np.mean([c["baseline_s"] for c in per_case])),
                 "cases": per_case}
    report["synthetic"] = synthetic
    dice_figure(synthetic, args.figures / "segmentation_dice_synthetic.png")

    # the real template (training source, real intensities)
    template_result = run_case("CIT168 template", t1, labels_ours.array, model, t1, labels_ours)
    template_result.pop("labels")
    report["template"] = template_result
    result = segmentation.segment(t1, model)
    overlay_figure(t1, result.labels.array, [-11.1, -12.7, -7.6], args.figures / "segmentation_cit168_template.png",
                   "CIT168 template (CC BY 4.0, Pauli et al. 2018): network labels")

    # the real head (no labels): plausibility and figures (kept out of the shipped tree)
    head = read_volume(DATA / "real_heads" / "head01_t1w.nii.gz")
    started = time.perf_counter()
    head_result = segmentation.segment(head, model)
    head_s = time.perf_counter() - started
    report["real_head"] = {"seconds": head_s, **head_result.to_dict()}
    # view centred on where the template's left STN lands in this head
    matrix = head_result.localization.template_to_input_ras
    centre = matrix[:3, :3] @ np.array([-11.1, -12.7, -7.6]) + matrix[:3, 3]
    overlay_figure(head, head_result.labels.array, centre, args.private_figures / "head01_overlay.png",
                   "head01 (CC BY-NC 4.0, McCausland Center): network labels")
    for s in head_result.structures:
        print(f"real head {s.name:10s} volume {s.volume_mm3:7.1f} mm3 centroid AC-PC {s.centroid_acpc} flags {s.flags}")

    # whole command on a 1 mm whole-head image
    with tempfile.TemporaryDirectory() as workdir:
        head_sitk = sitk.ReadImage(str(DATA / "real_heads" / "head01_t1w.nii.gz"))
        size = [int(round(n * s)) for n, s in zip(head_sitk.GetSize(), head_sitk.GetSpacing())]
        head_1mm = sitk.Resample(head_sitk, size, sitk.Transform(), sitk.sitkLinear, head_sitk.GetOrigin(),
                                 (1.0, 1.0, 1.0), head_sitk.GetDirection(), 0.0, head_sitk.GetPixelID())
        path = Path(workdir) / "head_1mm.nii.gz"
        sitk.WriteImage(head_1mm, str(path))
        command = whole_command(path, Path(workdir))
        report["whole_command_1mm_head"] = {**command, "size": size}
        print(f"whole command, 1 mm head {size}: exit {command['exit_code']}, wall {command['wall_s']:.1f} s, "
              f"peak RSS {command['peak_rss_mb']:.0f} MB", flush=True)

    print_tables(report)
    (args.out / "segmentation_benchmark.md").write_text(markdown_tables(report))
    summary = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "hardware": report["hardware"],
               "held_out_synthetic_cases": len(report["synthetic"]["cases"]),
               "dice_mean_ours": {n: round(report["synthetic"]["ours"][n]["dice_mean"], 3) for n in NAMES},
               "dice_mean_registration": {n: round(report["synthetic"]["baseline"][n]["dice_mean"], 3) for n in NAMES},
               "centroid_error_mm_mean_ours": {n: round(report["synthetic"]["ours"][n]["centroid_error_mm_mean"], 2)
                                               for n in NAMES},
               "mean_dice_ours": round(report["synthetic"]["ours"]["mean_dice_all"], 3),
               "mean_dice_registration": round(report["synthetic"]["baseline"]["mean_dice_all"], 3),
               "seconds_per_case_ours": round(report["synthetic"]["ours_s_mean"], 2),
               "seconds_per_case_registration": round(report["synthetic"]["baseline_s_mean"], 2),
               "network_forward_s": round(report["network_forward_s_median"], 3),
               "whole_command_1mm_head": {k: report["whole_command_1mm_head"][k] for k in ("wall_s", "peak_rss_mb")}}
    (args.out / "segmentation_benchmark_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "segmentation_benchmark.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"wrote {args.out / 'segmentation_benchmark.json'}")
    return 0


def markdown_tables(report: dict) -> str:
    synthetic = report["synthetic"]
    lines = [f"Held-out synthetic cases: {len(synthetic['cases'])}. Mean time per case: network pipeline "
             f"{synthetic['ours_s_mean']:.1f} s, registration (affine + BSpline) {synthetic['baseline_s_mean']:.1f} s.", "",
             "| structure | Dice (ours) | min Dice | HD95 mm | centroid err. mm (mean / max) | Dice affine+BSpline | "
             "HD95 mm | centroid err. mm | Dice affine only |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in NAMES:
        o, b, a = synthetic["ours"][name], synthetic["baseline"][name], synthetic["affine"][name]
        lines.append(f"| {name} | {o['dice_mean']:.3f} | {o['dice_min']:.2f} | {o['hd95_mm_mean']:.2f} | "
                     f"{o['centroid_error_mm_mean']:.2f} / {o['centroid_error_mm_max']:.2f} | {b['dice_mean']:.3f} | "
                     f"{b['hd95_mm_mean']:.2f} | {b['centroid_error_mm_mean']:.2f} | {a['dice_mean']:.3f} |")
    lines.append(f"| **mean** | **{synthetic['ours']['mean_dice_all']:.3f}** | | | | "
                 f"**{synthetic['baseline']['mean_dice_all']:.3f}** | | | **{synthetic['affine']['mean_dice_all']:.3f}** |")
    t = report["template"]
    lines += ["", "CIT168 template (1 mm, real T1w intensities; the training source):", "",
              "| structure | Dice (ours) | centroid err. mm | Dice affine+BSpline |", "|---|---|---|---|"]
    for name in NAMES:
        lines.append(f"| {name} | {t['ours'][name]['dice']:.3f} | {t['ours'][name]['centroid_error_mm']:.2f} | "
                     f"{t['baseline'][name]['dice']:.3f} |")
    head = report["real_head"]
    lines += ["", "Real head (head01, no labels): structure centroids in AC-PC space (automatic AC/PC/midline).", "",
              "| structure | volume mm³ | lateral mm | AP mm | vertical mm | flags |", "|---|---|---|---|---|---|"]
    for s in head["structures"]:
        c = s["centroid_acpc"] or [float("nan")] * 3
        lines.append(f"| {s['name']} | {s['volume_mm3']:.0f} | {c[0]:.1f} | {c[1]:.1f} | {c[2]:.1f} | "
                     f"{', '.join(s['flags']) or 'ok'} |")
    command = report["whole_command_1mm_head"]
    lines += ["", f"Whole command on the real head resampled to 1 mm ({' x '.join(map(str, command['size']))}): exit "
              f"{command['exit_code']}, wall {command['wall_s']:.1f} s, peak RSS {command['peak_rss_mb']:.0f} MB. "
              f"Network forward on the ROI: {report['network_forward_s_median']:.3f} s (median of 5).", ""]
    return "\n".join(lines)


def print_tables(report: dict) -> None:
    synthetic = report["synthetic"]
    print(f"\nHeld-out synthetic cases: {len(synthetic['cases'])}; mean time ours {synthetic['ours_s_mean']:.1f} s, "
          f"registration {synthetic['baseline_s_mean']:.1f} s")
    print(f"{'structure':11s} {'Dice ours':>9s} {'min':>5s} {'HD95':>5s} {'cent.':>6s} {'cent.max':>8s} | "
          f"{'Dice reg':>8s} {'HD95':>5s} {'cent.':>6s}")
    for name in NAMES:
        o, b = synthetic["ours"][name], synthetic["baseline"][name]
        print(f"{name:11s} {o['dice_mean']:9.3f} {o['dice_min']:5.2f} {o['hd95_mm_mean']:5.2f} "
              f"{o['centroid_error_mm_mean']:6.2f} {o['centroid_error_mm_max']:8.2f} | {b['dice_mean']:8.3f} "
              f"{b['hd95_mm_mean']:5.2f} {b['centroid_error_mm_mean']:6.2f}")
    print(f"{'mean':11s} {synthetic['ours']['mean_dice_all']:9.3f} {'':5s} {'':5s} {'':6s} {'':8s} | "
          f"{synthetic['baseline']['mean_dice_all']:8.3f}")
    print("affine-only registration, mean Dice per structure: "
          + "  ".join(f"{n} {synthetic['affine'][n]['dice_mean']:.2f}" for n in NAMES)
          + f"  (mean {synthetic['affine']['mean_dice_all']:.3f})")
    t = report["template"]
    print("\nCIT168 template: Dice ours / registration")
    print("  " + "  ".join(f"{n} {t['ours'][n]['dice']:.2f}/{t['baseline'][n]['dice']:.2f}" for n in NAMES))


if __name__ == "__main__":
    sys.exit(main())
