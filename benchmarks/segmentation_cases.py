"""Held-out benchmark cases for the segmentation engine: anatomical variation, physics-based contrasts,
oblique thick-slice grids, bias field and noise (benchmarks/benchmark_segmentation.py).

Anatomy: the CIT168 atlas (structures + 4 tissue classes of its T1 template) with each target nucleus
moved (0.5-2 mm), scaled (0.85-1.15, per axis in 30% of the cases) independently per side by a smooth
local displacement; or the BigBrain nuclei (Xiao et al. 2019, CC BY 4.0: an independent brain and
delineation) in place of the CIT168 ones. Contrast: per tissue class and structure a physics-motivated
intensity (T1: the CIT168 template's own class medians, nuclei faint; T2: iron-rich nuclei darker;
SWI/T2*: much darker; QSM: iron-rich nuclei bright; FLAIR: CSF dark, weak nuclear contrast), jittered
4% per case, with texture. Grid: a random head pose (15 degrees, 10 mm, 5% scaling), oblique voxel
axes (up to 20 degrees), 1 mm in plane and 2-3 mm slices along a random axis (3 sub-slices averaged),
multiplicative bias field, noise. Seeds ``default_rng([4_000_037, n])``: disjoint from training,
validation, the old benchmark and the tests; the engine was tuned on n = 0-9 (same n: same anatomy and pose),
so the benchmark draws n from ``case_seed`` (>= 1000, never a tuning seed).

Anatomy map codes (template 1 mm grid): 0 outside the brain, CIT168 codes 1-16 / 101-116, tissue
classes 201-204 (k-means of the template T1 inside the brain outside the CIT168 structures, darkest
first: CSF, GM, deep GM/WM mix, WM).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from DBSSegmentationLogic.segmentation.priors import kmeans_1d

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TISSUE = {201: "csf", 202: "gm", 203: "deep", 204: "wm"}
CIT_NAMES = {1: "Pu", 2: "Ca", 3: "NAC", 4: "EXA", 5: "GPe", 6: "GPi", 7: "SNc", 8: "RN", 9: "SNr",
             12: "VeP", 13: "HN", 14: "HTH", 15: "MN", 16: "STN"}
TARGET_CIT = (5, 6, 7, 8, 9, 16)

# relative intensities (0..1), physics-motivated; T1 uses the template's own class medians
CONTRASTS = {
    "T2": dict(outside=0.05, csf=1.0, gm=0.55, deep=0.50, wm=0.40, Pu=0.50, Ca=0.55, NAC=0.55, EXA=0.55,
               GPe=0.30, GPi=0.25, SNc=0.30, RN=0.27, SNr=0.22, VeP=0.42, HN=0.45, HTH=0.50, MN=0.45, STN=0.30),
    "SWI": dict(outside=0.05, csf=0.85, gm=0.60, deep=0.56, wm=0.50, Pu=0.50, Ca=0.58, NAC=0.58, EXA=0.55,
                GPe=0.26, GPi=0.18, SNc=0.20, RN=0.18, SNr=0.12, VeP=0.36, HN=0.45, HTH=0.50, MN=0.45, STN=0.20),
    "QSM": dict(outside=0.30, csf=0.30, gm=0.35, deep=0.33, wm=0.25, Pu=0.45, Ca=0.42, NAC=0.38, EXA=0.35,
                GPe=0.70, GPi=0.80, SNc=0.70, RN=0.70, SNr=0.85, VeP=0.50, HN=0.40, HTH=0.35, MN=0.35, STN=0.65),
    "FLAIR": dict(outside=0.02, csf=0.08, gm=0.60, deep=0.55, wm=0.45, Pu=0.55, Ca=0.58, NAC=0.55, EXA=0.55,
                  GPe=0.42, GPi=0.40, SNc=0.45, RN=0.45, SNr=0.42, VeP=0.50, HN=0.55, HTH=0.55, MN=0.50, STN=0.45),
}


@lru_cache(maxsize=1)
def template_data():
    from DBSSegmentationLogic.io.volumes import read_volume
    t1 = read_volume(DATA / "cit168" / "cit168_t1w.nii.gz")
    cit = read_volume(DATA / "cit168" / "cit168_labels.nii.gz")
    image = t1.array.astype(np.float32)
    brain = image > 0
    free = brain & (cit.array == 0)
    centres = kmeans_1d(image[free][::7], 4)
    tissue = np.argmin(np.abs(image[..., None] - centres), axis=-1) + 201
    anatomy = np.where(cit.array > 0, cit.array, np.where(brain, tissue, 0)).astype(np.int32)
    return t1, anatomy


def t1_table(t1_array, anatomy):
    table = {}
    scale = np.percentile(t1_array[anatomy > 0], 99.5)
    for code in np.unique(anatomy):
        name = "outside" if code == 0 else TISSUE.get(code) or CIT_NAMES[code % 100]
        values = t1_array[anatomy == code] / scale
        table.setdefault(name, []).append(float(np.median(values)))
    return {k: float(np.mean(v)) for k, v in table.items()}


@lru_cache(maxsize=1)
def bigbrain_anatomy():
    """CIT168 anatomy with its target nuclei replaced by the BigBrain ones (on the template grid)."""
    from DBSSegmentationLogic.io.volumes import read_volume
    t1, anatomy = template_data()
    bb = read_volume(DATA / "bigbrain" / "bigbrain_labels.nii.gz")
    k, j, i = np.meshgrid(*[np.arange(n) for n in anatomy.shape], indexing="ij")
    ras = np.stack([i, j, k], -1).reshape(-1, 3) @ t1.ijk_to_ras[:3, :3].T + t1.ijk_to_ras[:3, 3]
    ijk = bb.ras_to_ijk_points(ras)
    bbv = ndimage.map_coordinates(bb.array, ijk[:, ::-1].T, order=0, mode="constant", cval=0).reshape(anatomy.shape)
    code_map = {1: 8, 2: 108, 3: 9, 4: 109, 5: 16, 6: 116, 11: 5, 12: 105, 13: 6, 14: 106}
    targets = np.isin(anatomy % 100, TARGET_CIT) & (anatomy > 0) & (anatomy < 200)
    keep = ~targets
    _, idx = ndimage.distance_transform_edt(~keep, return_indices=True)
    filled = anatomy[tuple(idx)]
    for b, c in code_map.items():
        filled[bbv == b] = c
    return filled


def ours_from_anatomy(anatomy):
    from DBSSegmentationLogic.segmentation.labels import cit168_to_ours
    a = np.where(anatomy < 200, anatomy, 0)
    return cit168_to_ours(a)


def _bump_field(anatomy, ijk_to_ras, rng, max_shift=2.0, scale_range=(0.85, 1.15), sigma_mm=2.5):
    """Backward displacement (mm, template RAS, array (3, k, j, i) on a crop) moving and scaling each
    target nucleus (per side, independently). Returns (field, crop slices)."""
    groups = {"STN": (16,), "RN": (8,), "SN": (7, 9), "GPi": (6,), "GPe": (5,)}
    # crop around the nuclei
    mask_all = np.isin(anatomy, [c for g in groups.values() for c in g] + [c + 100 for g in groups.values() for c in g])
    kji = np.argwhere(mask_all)
    lo = np.maximum(kji.min(0) - 12, 0)
    hi = np.minimum(kji.max(0) + 13, anatomy.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = anatomy[crop]
    shape = sub.shape
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    offset = lo[::-1]
    ras = (np.stack([i + offset[0], j + offset[1], k + offset[2]], -1) @ ijk_to_ras[:3, :3].T.astype(np.float32)
           + ijk_to_ras[:3, 3].astype(np.float32))
    total = np.zeros(shape + (3,), np.float32)
    weight = np.zeros(shape, np.float32)
    params = {}
    for name, codes in groups.items():
        for side, add in (("left", 0), ("right", 100)):
            m = np.isin(sub, [c + add for c in codes])
            if not m.any():
                continue
            centre = ras[m].mean(0)
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            shift = direction * rng.uniform(0.5, max_shift)
            scale = rng.uniform(*scale_range, 3) if rng.uniform() < 0.3 else np.full(3, rng.uniform(*scale_range))
            # forward y = c + S (x - c) + t  ->  backward x = c + (y - c - t) / S
            back = centre + (ras - centre - shift) / scale - ras
            dist = ndimage.distance_transform_edt(~m)
            w = np.exp(-0.5 * (dist / sigma_mm) ** 2).astype(np.float32)
            # extend the full weight to cover the enlarged structure
            w[dist <= max(0.0, (scale.max() - 1) * 6 + 2)] = 1.0
            total += w[..., None] * back
            weight += w
            params[f"{name}_{side}"] = {"shift_mm": shift.round(2).tolist(), "scale": scale.round(3).tolist()}
    field = total / np.maximum(weight, 1.0)[..., None]
    return field, crop, params


def varied_anatomy(anatomy, ijk_to_ras, rng):
    field, crop, params = _bump_field(anatomy, ijk_to_ras, rng)
    sub = anatomy[crop]
    shape = sub.shape
    lin = np.linalg.inv(ijk_to_ras[:3, :3])
    disp_ijk = field @ lin.T  # mm -> voxel (template grid is axis aligned 1 mm)
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    coords = np.stack([k + disp_ijk[..., 2], j + disp_ijk[..., 1], i + disp_ijk[..., 0]])
    warped = ndimage.map_coordinates(sub, coords, order=0, mode="nearest")
    out = anatomy.copy()
    out[crop] = warped
    return out, params


def _rotation(angles):
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class Case:
    name: str
    family: str
    anatomy_source: str
    image: np.ndarray  # [k, j, i]
    ijk_to_ras: np.ndarray
    truth: np.ndarray  # our codes on the case grid
    pose: np.ndarray  # case RAS -> template RAS
    params: dict
    anatomy: np.ndarray | None = None  # the case's own anatomy map on the template grid (before posing)


def make_case(seed: int, family: str, anatomy_source: str = "cit168_varied") -> Case:
    rng = np.random.default_rng([4_000_037, seed])
    t1, anatomy0 = template_data()
    if anatomy_source == "cit168_varied":
        anatomy, params = varied_anatomy(anatomy0, t1.ijk_to_ras, rng)
    elif anatomy_source == "bigbrain":
        anatomy, params = bigbrain_anatomy(), {}
    else:
        anatomy, params = anatomy0, {}
    table = t1_table(t1.array.astype(np.float32), anatomy0) if family == "T1" else CONTRASTS[family]
    # intensity per anatomy code, jittered
    lut = np.zeros(256, np.float32)
    for code in range(256):
        if code == 0:
            name = "outside"
        elif code in TISSUE:
            name = TISSUE[code]
        elif code % 100 in CIT_NAMES and code < 200:
            name = CIT_NAMES[code % 100]
        else:
            continue
        lut[code] = table[name]
    jitter = (1 + rng.normal(0, 0.04, 256)).astype(np.float32)
    jitter_pairs = jitter.copy()
    jitter_pairs[101:117] = jitter[1:17]  # same tissue both sides
    source = lut[anatomy] * jitter_pairs[anatomy]
    texture = ndimage.gaussian_filter(rng.normal(0, 0.03, anatomy.shape).astype(np.float32), 0.7) * 2.0
    source = ndimage.gaussian_filter(source, 0.5) + texture * (anatomy > 0)
    # pose and oblique grid
    centre = np.array([0.0, -10.0, 5.0])
    angles = np.deg2rad(rng.uniform(-15, 15, 3))
    scales = rng.uniform(0.95, 1.05, 3)
    lin = _rotation(angles) @ np.diag(scales)
    pose = np.eye(4)
    pose[:3, :3] = lin
    pose[:3, 3] = centre - lin @ centre + rng.uniform(-10, 10, 3)
    grid_rot = _rotation(np.deg2rad(rng.uniform(-20, 20, 3)))
    slice_axis = int(rng.integers(3))
    spacing = np.full(3, 1.0)
    spacing[slice_axis] = rng.uniform(2.0, 3.0)
    # box covering the brain in case RAS, along the grid axes
    brain_kji = np.argwhere(anatomy0 > 0)
    lo_b, hi_b = brain_kji.min(0)[::-1], brain_kji.max(0)[::-1]
    corners_ijk = np.array([[a, b, c] for a in (lo_b[0], hi_b[0]) for b in (lo_b[1], hi_b[1]) for c in (lo_b[2], hi_b[2])])
    corners_t = corners_ijk @ t1.ijk_to_ras[:3, :3].T + t1.ijk_to_ras[:3, 3]
    inv_pose = np.linalg.inv(pose)
    corners_case = corners_t @ inv_pose[:3, :3].T + inv_pose[:3, 3]
    in_grid = corners_case @ grid_rot  # coordinates along the grid axes
    low, high = in_grid.min(0) - 6, in_grid.max(0) + 6
    shape_ijk = np.ceil((high - low) / spacing).astype(int)
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = grid_rot @ np.diag(spacing)
    ijk_to_ras[:3, 3] = grid_rot @ low
    # sub-slices: 3 per slice across the thickness
    subs = []
    label = None
    to_src = np.linalg.inv(t1.ijk_to_ras) @ pose
    src_t = torch.from_numpy(source)[None, None]
    anat_t = torch.from_numpy(anatomy.astype(np.float32))[None, None]
    size = torch.tensor(anatomy.shape[::-1], dtype=torch.float32)
    k, j, i = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape_ijk[::-1]], indexing="ij")
    base = torch.stack([i, j, k], -1)
    for offset in (-1 / 3, 0.0, 1 / 3):
        shift = torch.zeros(3)
        shift[slice_axis] = offset
        ijk = base + shift
        m = torch.from_numpy((to_src @ ijk_to_ras).astype(np.float32))
        src = ijk @ m[:3, :3].T + m[:3, 3]
        grid = (2 * src / (size - 1) - 1)[None]
        subs.append(F.grid_sample(src_t, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0])
        if offset == 0.0:
            label = F.grid_sample(anat_t, grid, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0]
    image = torch.stack(subs).mean(0).numpy()
    anatomy_case = label.numpy().astype(np.int32)
    truth = ours_from_anatomy(anatomy_case)
    # bias field and noise
    coarse = rng.normal(0, 0.15, (4, 4, 4)).astype(np.float32)
    bias = F.interpolate(torch.from_numpy(coarse)[None, None], size=image.shape, mode="trilinear",
                         align_corners=True)[0, 0].numpy()
    image = image * np.exp(bias)
    noise_std = rng.uniform(0.015, 0.04)
    image = np.abs(image + rng.normal(0, noise_std, image.shape).astype(np.float32))  # magnitude-like
    image = (image * 1000).astype(np.float32)
    params = {**params, "slice_axis": slice_axis, "spacing": spacing.round(2).tolist(), "noise_std": round(noise_std, 3)}
    return Case(f"{anatomy_source}-{family}-{seed}", family, anatomy_source, image, ijk_to_ras, truth, pose, params,
                anatomy)


def corner_anatomy(anatomy: np.ndarray, margin: int) -> np.ndarray:
    """An anatomy map of the template grid cropped to the grid of the engine's anatomy
    (priors.anatomy_grid: the widened ROI's voxel corners, which fall on template nodes)."""
    from DBSSegmentationLogic.segmentation.priors import anatomy_grid
    t1, _ = template_data()
    shape, grid = anatomy_grid(margin)
    start = np.linalg.inv(t1.ijk_to_ras) @ grid[:, 3]
    low = np.rint(start[:3]).astype(int)
    assert np.allclose(start[:3], low) and np.allclose(t1.ijk_to_ras[:3, :3], grid[:3, :3]), "grid not on template nodes"
    return anatomy[low[2]:low[2] + shape[2], low[1]:low[1] + shape[1], low[0]:low[0] + shape[0]]


def engine_prior(anatomy: np.ndarray, model, sigma_mm: float | None = None):
    """The engine's prior (priors.AtlasPrior, the shipped model's classes) made from an anatomy map of the
    template grid, as the shipped one is made from CIT168's; ``sigma_mm`` defaults to the shipped smoothing."""
    from DBSSegmentationLogic.segmentation.priors import prior_from_corner_anatomy
    margin = int(model.manifest["margin_mm"])
    sigma_mm = float(model.manifest["parameters"]["prior_sigma_mm"]) if sigma_mm is None else sigma_mm
    return prior_from_corner_anatomy(corner_anatomy(anatomy, margin), sigma_mm, margin, model.manifest,
                                     codes=model.prior.codes)
