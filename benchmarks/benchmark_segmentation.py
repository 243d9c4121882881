"""Benchmark of the segmentation engine (issue 10), one run on the same held-out cases:

(a) the generative engine (``segmentation.engine.segment``), as shipped and with its dense deformation
    stage switched on (``engine_dense``);
(b) the CIT168 labels through the engine's own affine localization (atlas baseline), and through the exact
    known pose of the case (what a perfect affine could give); and, as a ceiling, the engine's prior made
    from the case's *own* anatomy through the exact pose (``own_anatomy_exact_pose``: what a perfect
    deformation of the atlas could give, through the same resampling onto the case's grid);
(c) the network shipped before this engine (3D U-Net ``step600``, weights read from git history at
    ``NETWORK_COMMIT``, same localization);
(d) ANTs SyN (antspyx): the template T1 registered to the case (its own affine + SyN, Mattes MI), the
    CIT168 labels carried by it; and SyN alone started from the engine's localization (``ants_syn_localized``:
    the case resampled into template space through it, so both start from the same affine).

    .venv/bin/python benchmarks/benchmark_segmentation.py [--cases 2] [--no-ants] [--no-dense] [--out benchmarks/results]

Cases (benchmarks/segmentation_cases.py): CIT168 anatomy with each nucleus moved/scaled per side, in T1,
T2, SWI (T2*), QSM and FLAIR contrasts; BigBrain anatomy (independent nuclei) in T1, T2 and SWI; random
pose, oblique grid, 2-3 mm slices, bias field and noise. ``--cases`` per family, T2 and SWI with CIT168
anatomy one more (the issue's targets are measured there). Per structure: Dice, 95% Hausdorff distance,
centroid error; per method: seconds and peak memory increase (resident set sampled every 20 ms).
Also: the real head (plausibility in AC-PC space, figure kept out of the tree: CC BY-NC) and the whole
``segment`` command on the real head resampled to 1 mm (wall time, peak RSS under GNU time).
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import segmentation_cases as cases

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import Volume, read_volume
from DBSSegmentationLogic.segmentation import (
    engine,
    template,
)
from DBSSegmentationLogic.segmentation import labels as label_codes

DATA = ROOT.parent / "shared" / "data"
NAMES = [s.name for s in label_codes.STRUCTURES]
NETWORK_COMMIT = "14f749d"
METHODS = ("engine", "engine_dense", "atlas_affine", "atlas_exact_pose", "own_anatomy_exact_pose", "network",
           "ants_syn", "ants_syn_localized")
#: The engine with its dense deformation stage switched on (3 rounds), measured beside the shipped setting.
DENSE = {"deformation_rounds": 3}
FAMILIES = [("cit168_varied", "T1"), ("cit168_varied", "T2"), ("cit168_varied", "SWI"), ("cit168_varied", "QSM"),
            ("cit168_varied", "FLAIR"), ("bigbrain", "T1"), ("bigbrain", "T2"), ("bigbrain", "SWI")]
#: Seeds ``n`` of ``segmentation_cases.make_case`` on which the engine's parameters were chosen (10 cases of
#: the same generator, ``default_rng([4_000_037, n])``: the same seed gives the same anatomy and pose).
TUNING_SEEDS = range(10)


def case_seed(family_index: int, n: int) -> int:
    """Seed of the n-th case of a family: 1000 x family index + n, except the first family (CIT168 T1),
    whose seeds 0, 1, ... would be the tuning seeds and which takes 1000 x len(FAMILIES) + n instead."""
    assert 0 <= n < 1000
    seed = 1000 * (family_index or len(FAMILIES)) + n
    assert seed not in TUNING_SEEDS
    return seed


# ----------------------------------------------------------------------------------- metrics
def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = int(prediction.sum() + truth.sum())
    return 2.0 * int((prediction & truth).sum()) / total if total else 1.0


def hausdorff95_mm(prediction: np.ndarray, truth: np.ndarray, spacing_kji) -> float:
    if not prediction.any() or not truth.any():
        return float("nan")
    both = prediction | truth
    slices = ndimage.find_objects(both.astype(np.uint8))[0]
    slices = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in slices)
    p, t = prediction[slices], truth[slices]
    sp, st = p & ~ndimage.binary_erosion(p), t & ~ndimage.binary_erosion(t)
    to_t = ndimage.distance_transform_edt(~st, sampling=spacing_kji)
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing_kji)
    return float(np.percentile(np.concatenate([to_t[sp], to_p[st]]), 95))


def evaluate(prediction: np.ndarray, truth: np.ndarray, grid: Volume) -> dict:
    spacing_kji = grid.spacing_mm[::-1]
    scores = {}
    for s in label_codes.STRUCTURES:
        p, t = prediction == s.code, truth == s.code
        cp = grid.ijk_to_ras_points(np.argwhere(p).mean(0)[::-1]) if p.any() else None
        ct = grid.ijk_to_ras_points(np.argwhere(t).mean(0)[::-1]) if t.any() else None
        scores[s.name] = {"dice": dice(p, t), "hd95_mm": hausdorff95_mm(p, t, spacing_kji),
                          "centroid_error_mm": float(np.linalg.norm(cp - ct)) if cp is not None and ct is not None
                          else float("nan")}
    return scores


class PeakMemory:
    """Peak resident-set increase (MB) of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096 / 2**20

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mb = self.peak - self.base


# ----------------------------------------------------------------------------------- the old network
class LegacyNetwork:
    """The U-Net shipped before this engine, read from git history (SHA-256 checked), run as it was:
    ROI normalised, 14 channels (image, position, atlas prior), mirror averaging, largest component."""

    def __init__(self):
        from DBSSegmentationLogic.training.model import build_model

        manifest = json.loads(subprocess.run(["git", "show", f"{NETWORK_COMMIT}:Resources/Models/manifest.json"],
                                             cwd=ROOT, capture_output=True, check=True).stdout)
        weights = subprocess.run(["git", "show", f"{NETWORK_COMMIT}:Resources/Models/{manifest['file']}"],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        import hashlib
        assert hashlib.sha256(weights).hexdigest() == manifest["sha256"], "network weights from git fail SHA-256"
        self.manifest = manifest
        self.network = build_model(manifest["architecture"])
        self.network.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
        self.network.eval()

    def segment(self, volume: Volume, template_to_input_ras: np.ndarray) -> np.ndarray:
        from DBSSegmentationLogic.segmentation.intensity import normalize_intensity
        from DBSSegmentationLogic.training.model import network_input

        roi, _ = engine.resample_to_roi(volume, template_to_input_ras)
        image = normalize_intensity(torch.from_numpy(roi))
        channels = self.manifest["architecture"]["in_channels"]
        with torch.no_grad():
            probabilities = torch.softmax(self.network(network_input(image, channels)), 1)
            flipped = torch.softmax(self.network(network_input(torch.flip(image, dims=[2]), channels)), 1)
            swap = torch.from_numpy(label_codes.mirror_lookup())
            probabilities = 0.5 * (probabilities + torch.flip(flipped, dims=[4])[:, swap])
        labels_roi = engine.keep_largest_components(probabilities.argmax(1)[0].numpy().astype(np.uint8))
        one_hot = np.eye(label_codes.NUM_CLASSES, dtype=np.float32)[labels_roi].transpose(3, 0, 1, 2)
        return engine.posterior_to_input(one_hot, volume, template_to_input_ras)[0]


# ----------------------------------------------------------------------------------- ANTs SyN
def _ants():
    import ants
    return ants


def _crop_box(grid: Volume, matrix: np.ndarray, margin_mm: float):
    """Voxel bounds of ``grid`` around the ROI as ``matrix`` (template RAS -> grid RAS) maps it, + margin."""
    roi = template.roi_ijk_to_template_ras()
    size = np.array(template.ROI_SHAPE_IJK)
    corners = np.array([[a, b, c] for a in (0, size[0]) for b in (0, size[1]) for c in (0, size[2])], float)
    ras = (matrix @ roi @ np.c_[corners, np.ones(8)].T).T[:, :3]
    ijk = grid.ras_to_ijk_points(ras)
    pad = margin_mm / grid.spacing_mm
    low = np.maximum(np.floor(ijk.min(0) - pad).astype(int), 0)
    high = np.minimum(np.ceil(ijk.max(0) + pad).astype(int) + 1, np.array(grid.shape_ijk))
    return low, high


def _to_ants(grid: Volume, low, high, array):
    """The sub-block [low, high) (i, j, k) of ``array`` on ``grid``'s geometry as an ANTs image (LPS)."""
    sub = np.ascontiguousarray(array[low[2]:high[2], low[1]:high[1], low[0]:high[0]].astype(np.float32))
    shift = np.eye(4)
    shift[:3, 3] = low
    matrix = grid.ijk_to_ras @ shift
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    direction_ras = matrix[:3, :3] / spacing
    lps = np.diag([-1.0, -1.0, 1.0])
    return _ants().from_numpy(sub.transpose(2, 1, 0).copy(), origin=tuple((lps @ matrix[:3, 3]).tolist()),
                              spacing=tuple(spacing.tolist()), direction=lps @ direction_ras)


def ants_syn(volume: Volume, template_to_input_ras: np.ndarray, t1: Volume, atlas_labels: Volume,
             threads: int) -> np.ndarray:
    """ANTs SyN of the template T1 (cropped to the ROI + 20 mm) onto the case (cropped to the ROI as the
    localization maps it, + 15 mm); ANTs' own affine first (``type_of_transform='SyN'``); the CIT168
    labels through the result (genericLabel), pasted into the case grid."""
    import os
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    ants = _ants()
    low_c, high_c = _crop_box(volume, template_to_input_ras, 15.0)
    low_t, high_t = _crop_box(t1, np.eye(4), 20.0)
    fixed = _to_ants(volume, low_c, high_c, volume.array)
    moving = _to_ants(t1, low_t, high_t, t1.array)
    moving_labels = _to_ants(atlas_labels, low_t, high_t, atlas_labels.array)
    result = ants.registration(fixed=fixed, moving=moving, type_of_transform="SyN", random_seed=1)
    warped = ants.apply_transforms(fixed=fixed, moving=moving_labels, transformlist=result["fwdtransforms"],
                                   interpolator="genericLabel")
    out = np.zeros(volume.array.shape, dtype=np.uint8)
    out[low_c[2]:high_c[2], low_c[1]:high_c[1], low_c[0]:high_c[0]] = warped.numpy().transpose(2, 1, 0).round().astype(np.uint8)
    return out


def ants_syn_localized(volume: Volume, template_to_input_ras: np.ndarray, t1: Volume, atlas_labels: Volume,
                       threads: int, margin_mm: int = 15) -> np.ndarray:
    """ANTs SyN started from the engine's own localization (the fairer SyN baseline): the case resampled
    (linear) through the localization onto a 1 mm template-space box (the ROI + ``margin_mm``), the template
    T1 registered onto it by SyN alone (``SyNOnly``, identity start, Mattes MI), the CIT168 labels carried
    by it (genericLabel) and mapped back to the case grid through the localization (nearest)."""
    import os
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    ants = _ants()
    box = template.roi_ijk_to_template_ras()  # the ROI widened by margin_mm on every side
    box[:3, 3] -= margin_mm * template.ROI_SPACING_MM
    shape_ijk = np.array(template.ROI_SHAPE_IJK) + 2 * margin_mm
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in shape_ijk[::-1]], indexing="ij")
    box_ras = np.stack([i, j, k], -1).reshape(-1, 3) @ box[:3, :3].T + box[:3, 3]
    input_ras = box_ras @ template_to_input_ras[:3, :3].T + template_to_input_ras[:3, 3]
    ijk = volume.ras_to_ijk_points(input_ras)
    sampled = ndimage.map_coordinates(volume.array.astype(np.float32), ijk[:, ::-1].T, order=1, cval=0.0)
    box_volume = Volume(sampled.reshape(tuple(shape_ijk[::-1])), box)
    fixed = _to_ants(box_volume, np.zeros(3, int), shape_ijk, box_volume.array)
    low_t, high_t = _crop_box(t1, np.eye(4), margin_mm + 5.0)
    moving = _to_ants(t1, low_t, high_t, t1.array)
    moving_labels = _to_ants(atlas_labels, low_t, high_t, atlas_labels.array)
    result = ants.registration(fixed=fixed, moving=moving, type_of_transform="SyNOnly",
                               initial_transform="Identity", random_seed=1)
    warped = ants.apply_transforms(fixed=fixed, moving=moving_labels, transformlist=result["fwdtransforms"],
                                   interpolator="genericLabel").numpy().transpose(2, 1, 0).round().astype(np.uint8)
    low_c, high_c = _crop_box(volume, template_to_input_ras, margin_mm)
    kk, jj, ii = np.meshgrid(*[np.arange(a, b, dtype=float) for a, b in zip(low_c[::-1], high_c[::-1])], indexing="ij")
    case_ras = np.stack([ii, jj, kk], -1).reshape(-1, 3) @ volume.ijk_to_ras[:3, :3].T + volume.ijk_to_ras[:3, 3]
    to_box = np.linalg.inv(box) @ np.linalg.inv(template_to_input_ras)
    box_ijk = np.rint(case_ras @ to_box[:3, :3].T + to_box[:3, 3]).astype(int)
    inside = np.all((box_ijk >= 0) & (box_ijk < shape_ijk), axis=1)
    values = np.zeros(len(box_ijk), dtype=np.uint8)
    values[inside] = warped[box_ijk[inside, 2], box_ijk[inside, 1], box_ijk[inside, 0]]
    out = np.zeros(volume.array.shape, dtype=np.uint8)
    out[low_c[2]:high_c[2], low_c[1]:high_c[1], low_c[0]:high_c[0]] = values.reshape(kk.shape)
    return out


# ----------------------------------------------------------------------------------- runs
def run_case(case: cases.Case, model, network, t1, atlas_labels, threads, use_ants, use_dense=True) -> dict:
    volume = Volume(case.image, case.ijk_to_ras)
    out = {"name": case.name, "family": case.family, "anatomy": case.anatomy_source, "params": case.params,
           "scores": {}, "seconds": {}, "peak_mb": {}}
    with PeakMemory() as memory:
        started = time.perf_counter()
        try:
            result, out["engine_refused"] = engine.segment(volume, model), None
        except DBSInputError as error:
            # refused (the atlas does not match the image): scored as an empty map; the localization, which
            # the baselines reuse, from the atlas-only run that has no such check
            result, out["engine_refused"] = engine.segment(volume, model, deform=False), str(error)
        out["seconds"]["engine"] = time.perf_counter() - started
    out["peak_mb"]["engine"] = memory.mb
    refused = out["engine_refused"] is not None
    located = result.localization.template_to_input_ras
    out["engine_fallback"] = result.fallback
    out["engine_confidence"] = {s.name: None if refused else s.confidence for s in result.structures}
    out["engine_flags"] = {s.name: ["refused"] if refused else s.flags for s in result.structures}
    out["engine_fit"] = {k: result.fit.get(k) for k in ("min_jacobian", "max_displacement_mm", "seconds",
                                                        "atlas_information_nats")}
    out["scores"]["engine"] = evaluate(np.zeros_like(case.truth) if refused else result.labels.array, case.truth,
                                       volume)
    if use_dense and refused:
        out["scores"]["engine_dense"] = out["scores"]["engine"]
        out["seconds"]["engine_dense"] = out["seconds"]["engine"]
        out["peak_mb"]["engine_dense"] = memory.mb
    elif use_dense:
        with PeakMemory() as memory:
            started = time.perf_counter()
            dense = engine.segment(volume, model, parameters=DENSE, localization=result.localization)
            out["seconds"]["engine_dense"] = time.perf_counter() - started + result.timings_s["localization"]
        out["peak_mb"]["engine_dense"] = memory.mb
        out["scores"]["engine_dense"] = evaluate(dense.labels.array, case.truth, volume)
        out["engine_dense_fit"] = {k: dense.fit[k] for k in ("min_jacobian", "max_displacement_mm", "seconds")}
    prior = model.prior.output_prior()
    localization_s = result.timings_s["localization"]
    for name, matrix in (("atlas_affine", located), ("atlas_exact_pose", np.linalg.inv(case.pose))):
        with PeakMemory() as memory:
            started = time.perf_counter()
            labels = engine.keep_largest_components(engine.posterior_to_input(prior, volume, matrix)[0])
            out["seconds"][name] = time.perf_counter() - started + (localization_s if name == "atlas_affine" else 0.0)
        out["peak_mb"][name] = memory.mb
        out["scores"][name] = evaluate(labels, case.truth, volume)
    own = cases.engine_prior(case.anatomy, model)
    labels = engine.keep_largest_components(engine.posterior_to_input(own.output_prior(), volume,
                                                                      np.linalg.inv(case.pose))[0])
    out["seconds"]["own_anatomy_exact_pose"], out["peak_mb"]["own_anatomy_exact_pose"] = 0.0, 0.0
    out["scores"]["own_anatomy_exact_pose"] = evaluate(labels, case.truth, volume)
    if network is not None:
        with PeakMemory() as memory:
            started = time.perf_counter()
            labels = network.segment(volume, located)
            out["seconds"]["network"] = time.perf_counter() - started + localization_s
        out["peak_mb"]["network"] = memory.mb
        out["scores"]["network"] = evaluate(labels, case.truth, volume)
    if use_ants:
        with PeakMemory() as memory:
            started = time.perf_counter()
            labels = ants_syn(volume, located, t1, atlas_labels, threads)
            out["seconds"]["ants_syn"] = time.perf_counter() - started
        out["peak_mb"]["ants_syn"] = memory.mb
        out["scores"]["ants_syn"] = evaluate(labels, case.truth, volume)
        with PeakMemory() as memory:
            started = time.perf_counter()
            labels = ants_syn_localized(volume, located, t1, atlas_labels, threads)
            out["seconds"]["ants_syn_localized"] = time.perf_counter() - started + localization_s
        out["peak_mb"]["ants_syn_localized"] = memory.mb
        out["scores"]["ants_syn_localized"] = evaluate(labels, case.truth, volume)
    line = " | ".join(f"{m} {np.mean([v['dice'] for v in out['scores'][m].values()]):.3f} ({out['seconds'][m]:.1f} s)"
                      for m in out["scores"])
    print(f"{case.name}: {line} | fallback {result.fallback or '-'}", flush=True)
    return out


def family_summary(runs: list[dict]) -> dict:
    summary = {}
    for method in METHODS:
        have = [r for r in runs if method in r["scores"]]
        if not have:
            continue
        per = {}
        for name in NAMES:
            per[name] = {metric: float(np.nanmean([r["scores"][method][name][metric] for r in have]))
                         for metric in ("dice", "hd95_mm", "centroid_error_mm")}
        summary[method] = {
            "structures": per,
            "mean_dice": float(np.mean([per[n]["dice"] for n in NAMES])),
            "mean_hd95_mm": float(np.mean([per[n]["hd95_mm"] for n in NAMES])),
            "mean_centroid_error_mm": float(np.mean([per[n]["centroid_error_mm"] for n in NAMES])),
            "stn_dice_left_right": [per["STN_left"]["dice"], per["STN_right"]["dice"]],
            "centroid_error_rn_sn_stn_max_mm": float(max(per[f"{n}_{s}"]["centroid_error_mm"]
                                                         for n in ("RN", "SN", "STN") for s in ("left", "right"))),
            "seconds_mean": float(np.mean([r["seconds"][method] for r in have])),
            "peak_mb_max": float(np.max([r["peak_mb"][method] for r in have])),
        }
    return summary


def whole_command(image_path: Path, workdir: Path) -> dict:
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
    report = json.loads((workdir / "labels.json").read_text()) if completed.returncode == 0 else {}
    return {"exit_code": completed.returncode, "wall_s": wall_s, "peak_rss_mb": peak_mb,
            "timings_s": report.get("timings_s", {}),
            "uncertainty_written": (workdir / "labels_uncertainty.nii.gz").exists()}


def markdown(report: dict) -> str:
    lines = [f"Command: `{report['command']}`; {report['hardware']}.", ""]
    labels = {"engine": "engine (this)", "engine_dense": "engine + dense deformation", "atlas_affine": "atlas, engine's affine", "atlas_exact_pose":
              "atlas, exact pose", "own_anatomy_exact_pose": "case's own anatomy, exact pose (ceiling)", "network": "network (old)", "ants_syn": "ANTs SyN",
              "ants_syn_localized": "ANTs SyN from the engine's localization"}
    lines += ["| family | cases | method | mean Dice (gain vs atlas-affine) | STN Dice L / R | HD95 mm | "
              "centroid mm (mean; worst of RN/SN/STN) | s / case | peak MB |", "|---|---|---|---|---|---|---|---|---|"]
    for key, family in report["families"].items():
        base = family["summary"]["atlas_affine"]["mean_dice"]
        for method, s in family["summary"].items():
            gain = s["mean_dice"] - base
            lines.append(f"| {key} | {family['cases']} | {labels[method]} | {s['mean_dice']:.3f} ({gain:+.3f}) | "
                         f"{s['stn_dice_left_right'][0]:.2f} / {s['stn_dice_left_right'][1]:.2f} | "
                         f"{s['mean_hd95_mm']:.2f} | {s['mean_centroid_error_mm']:.2f}; "
                         f"{s['centroid_error_rn_sn_stn_max_mm']:.2f} | {s['seconds_mean']:.1f} | {s['peak_mb_max']:.0f} |")
    lines += ["", "Per structure, Dice of the engine (atlas through the exact pose) per family:", "",
              "| family | " + " | ".join(NAMES) + " |", "|---" * (len(NAMES) + 1) + "|"]
    for key, family in report["families"].items():
        e, x = family["summary"]["engine"]["structures"], family["summary"]["atlas_exact_pose"]["structures"]
        lines.append(f"| {key} | " + " | ".join(f"{e[n]['dice']:.2f} ({x[n]['dice']:.2f})" for n in NAMES) + " |")
    if "targets" in report:
        lines += ["", "Issue-10 targets:", "", "| target | measured | met |", "|---|---|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    if "confidence" in report:
        c = report["confidence"]
        lines += ["", f"Confidence (mean max-posterior per structure) against Dice, engine, all cases: "
                  f"Spearman {c['spearman']:.2f}; structures with confidence < {c['threshold']}: "
                  f"{c['below']} of {c['total']}, their mean Dice {c['dice_below']:.3f} vs {c['dice_above']:.3f} above."]
    if "real_head" in report:
        lines += ["", "Real head (head01, no labels), engine: centroids in AC-PC space (automatic landmarks).", "",
                  "| structure | volume mm³ | lateral | AP | vertical | confidence | flags |", "|---|---|---|---|---|---|---|"]
        for s in report["real_head"]["structures"]:
            c = s["centroid_acpc"] or [float("nan")] * 3
            lines.append(f"| {s['name']} | {s['volume_mm3']:.0f} | {c[0]:.1f} | {c[1]:.1f} | {c[2]:.1f} | "
                         f"{s.get('confidence')} | {', '.join(s['flags']) or 'ok'} |")
    if "whole_command_1mm_head" in report:
        w = report["whole_command_1mm_head"]
        lines += ["", f"Whole `segment` command, real head resampled to 1 mm: exit {w['exit_code']}, wall {w['wall_s']:.1f} s, "
                  f"peak RSS {w['peak_rss_mb']:.0f} MB, uncertainty map written: {w['uncertainty_written']}; "
                  f"timings {w['timings_s']}."]
    return "\n".join(lines) + "\n"


def dice_figure(report: dict, path: Path) -> None:
    """Mean Dice per family and method (bars), the figure of docs/segmentation.md."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(report["families"])
    methods = [m for m in ("engine", "atlas_affine", "atlas_exact_pose", "own_anatomy_exact_pose", "network", "ants_syn",
                           "ants_syn_localized")
               if all(m in report["families"][f]["summary"] for f in families)]
    names = {"engine": "engine", "atlas_affine": "atlas (engine's affine)", "atlas_exact_pose": "atlas (exact pose)",
             "own_anatomy_exact_pose": "ceiling: case's own anatomy", "network": "old network", "ants_syn": "ANTs SyN",
             "ants_syn_localized": "ANTs SyN (engine's localization)"}
    fig, axis = plt.subplots(figsize=(12, 4.2))
    width = 0.8 / len(methods)
    x = np.arange(len(families))
    for index, method in enumerate(methods):
        axis.bar(x + (index - (len(methods) - 1) / 2) * width,
                 [report["families"][f]["summary"][method]["mean_dice"] for f in families], width, label=names[method])
    axis.set_xticks(x)
    axis.set_xticklabels([f"{f}\n({report['families'][f]['cases']} cases)" for f in families], fontsize=8)
    axis.set_ylabel("mean Dice, 10 structures")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8, ncol=4, loc="upper center")
    axis.set_title("Held-out cases: moved/scaled nuclei (CIT168) or BigBrain nuclei, physics-based contrasts, "
                   "2-3 mm oblique slices", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def targets(report: dict) -> list[dict]:
    out = []
    fam = report["families"]
    for key in ("cit168_varied-T2", "cit168_varied-SWI"):
        if key not in fam:
            continue
        e, x = fam[key]["summary"]["engine"], fam[key]["summary"]["atlas_exact_pose"]
        out.append({"target": f"{key}: mean Dice >= 0.75", "measured": f"{e['mean_dice']:.3f}", "met": e["mean_dice"] >= 0.75})
        stn = e["stn_dice_left_right"]
        out.append({"target": f"{key}: STN Dice >= 0.70 per side", "measured": f"{stn[0]:.2f} / {stn[1]:.2f}",
                    "met": min(stn) >= 0.70})
        out.append({"target": f"{key}: mean >= atlas exact pose + 0.08", "measured":
                    f"{e['mean_dice']:.3f} vs {x['mean_dice']:.3f} + 0.08", "met": e["mean_dice"] >= x["mean_dice"] + 0.08})
        worst = e["centroid_error_rn_sn_stn_max_mm"]
        out.append({"target": f"{key}: centroid error <= 1.0 mm for RN, SN, STN (mean per structure)",
                    "measured": f"worst {worst:.2f} mm", "met": worst <= 1.0})
    for key in ("cit168_varied-T1", "bigbrain-T1"):
        if key in fam:
            e, x = fam[key]["summary"]["engine"], fam[key]["summary"]["atlas_exact_pose"]
            out.append({"target": f"{key}: at least the atlas through the exact pose", "measured":
                        f"{e['mean_dice']:.3f} vs {x['mean_dice']:.3f}", "met": e["mean_dice"] >= x["mean_dice"]})
    for key in ("bigbrain-T2", "bigbrain-SWI", "bigbrain-T1"):
        if key in fam:
            e, x = fam[key]["summary"]["engine"], fam[key]["summary"]["atlas_exact_pose"]
            out.append({"target": f"{key}: above the atlas-to-atlas agreement (CIT168 through the exact pose vs "
                        "BigBrain labels)", "measured": f"{e['mean_dice']:.3f} vs {x['mean_dice']:.3f}",
                        "met": e["mean_dice"] > x["mean_dice"]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2, help="cases per family (T2 and SWI of CIT168 anatomy: one more)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ants", action="store_true")
    parser.add_argument("--no-network", action="store_true")
    parser.add_argument("--no-dense", action="store_true", help="skip the engine with its dense deformation on")
    parser.add_argument("--no-head", action="store_true")
    parser.add_argument("--families", nargs="*", help="subset, e.g. cit168_varied-T2 bigbrain-SWI")
    parser.add_argument("--uncertain-threshold", type=float, default=engine.UNCERTAIN_CONFIDENCE)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = engine.load_model(device="cpu")
    network = None if args.no_network else LegacyNetwork()
    t1 = read_volume(DATA / "cit168" / "cit168_t1w.nii.gz")
    cit = read_volume(DATA / "cit168" / "cit168_labels.nii.gz")
    atlas_labels = cit.with_array(label_codes.cit168_to_ours(cit.array))
    started = time.perf_counter()
    report = {"command": " ".join(["python", *[Path(a).name if i == 0 else a for i, a in enumerate(sys.argv)]]),
              "hardware": f"{platform.machine()} {platform.processor() or ''}, {args.threads} torch/ITK threads, "
                          f"Python {platform.python_version()}, torch {torch.__version__}",
              "families": {}}
    seed = 0
    all_runs = []
    for anatomy, family in FAMILIES:
        key = f"{anatomy}-{family}"
        if args.families and key not in args.families:
            continue
        count = args.cases + (1 if key in ("cit168_varied-T2", "cit168_varied-SWI") else 0)
        runs = []
        for n in range(count):
            case = cases.make_case(case_seed(FAMILIES.index((anatomy, family)), n), family, anatomy)
            runs.append(run_case(case, model, network, t1, atlas_labels, args.threads, not args.no_ants,
                                 not args.no_dense))
        all_runs += runs
        report["families"][key] = {"cases": count, "summary": family_summary(runs), "runs": runs}
        seed += count
    # confidence against accuracy (engine)
    pairs = [(r["engine_confidence"][n], r["scores"]["engine"][n]["dice"]) for r in all_runs for n in NAMES
             if r["engine_confidence"][n] is not None]
    if pairs:
        from scipy.stats import spearmanr
        conf, dices = np.array(pairs).T
        below = conf < args.uncertain_threshold
        report["confidence"] = {"spearman": float(spearmanr(conf, dices)[0]), "threshold": args.uncertain_threshold,
                                "below": int(below.sum()), "total": len(conf),
                                "dice_below": float(dices[below].mean()) if below.any() else float("nan"),
                                "dice_above": float(dices[~below].mean()) if (~below).any() else float("nan"),
                                "pairs": np.round(pairs, 3).tolist()}
    report["targets"] = targets(report)
    if not args.no_head:
        head = read_volume(DATA / "real_heads" / "head01_t1w.nii.gz")
        result = engine.segment(head, model)
        report["real_head"] = {"structures": [s.to_dict() for s in result.structures], "fallback": result.fallback,
                               "timings_s": result.timings_s}
        with tempfile.TemporaryDirectory() as workdir:
            head_sitk = sitk.ReadImage(str(DATA / "real_heads" / "head01_t1w.nii.gz"))
            size = [int(round(n * s)) for n, s in zip(head_sitk.GetSize(), head_sitk.GetSpacing())]
            head_1mm = sitk.Resample(head_sitk, size, sitk.Transform(), sitk.sitkLinear, head_sitk.GetOrigin(),
                                     (1.0, 1.0, 1.0), head_sitk.GetDirection(), 0.0, head_sitk.GetPixelID())
            path = Path(workdir) / "head_1mm.nii.gz"
            sitk.WriteImage(head_1mm, str(path))
            report["whole_command_1mm_head"] = {**whole_command(path, Path(workdir)), "size": size}
    report["benchmark_minutes"] = (time.perf_counter() - started) / 60
    dice_figure(report, args.figures / "segmentation_benchmark_dice.png")
    text = markdown(report)
    print(text)
    (args.out / "segmentation_benchmark.md").write_text(text)
    (args.out / "segmentation_benchmark.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"wrote {args.out / 'segmentation_benchmark.json'} ({report['benchmark_minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
