"""Rigid CT-to-MRI and CT-to-CT fusion with a known pose; transform files; overlap check.

The CTs are made from the bundled sample MRI (a CIT168-derived T1w) by scripts/make_demo_postop_ct.py:
the planning MRI's head with CT-like values, a skull, leads with blooming and streaks, noise, placed
under a known rigid pose. (The geometric head phantom of ``synthetic_ct`` is a near-ellipsoid whose
rotation is barely defined by its own image: it is used for the localization tests, not for fusion.)
"""
import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.markups import find_landmarks, read_markups_points
from DBSSegmentationLogic.io.volumes import Volume, ras_to_lps, read_volume
from DBSSegmentationLogic.planning.plan import approach_direction_acpc
from DBSSegmentationLogic.postop import fusion

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "Resources" / "SampleCase"
#: A small CT grid for the tests: 0.9 mm in-plane, 1.5 mm slices, 230 x 230 x 180 mm.
TEST_GRID = dict(shape_ijk=(256, 256, 120), spacing_mm=0.9, slice_thickness_mm=1.5)


@functools.lru_cache(maxsize=None)
def demo_module():
    spec = importlib.util.spec_from_file_location("make_demo_postop_ct", REPO_ROOT / "scripts" / "make_demo_postop_ct.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def sample_mri() -> Volume:
    return read_volume(SAMPLE / "sample_t1w.nii.gz")


@functools.lru_cache(maxsize=None)
def sample_ct_model() -> Volume:
    return demo_module().head_ct_model(sample_mri())


@functools.lru_cache(maxsize=None)
def sample_plan() -> dict:
    """A plan-like dict for the sample case: indirect STN targets, 60°/15° approaches (no plan command needed)."""
    landmarks = find_landmarks(read_markups_points(SAMPLE / "landmarks.mrk.json"))
    acpc = AcpcSpace.from_landmarks(landmarks["ac"], landmarks["pc"], landmarks["midline"])
    trajectories = []
    for side, sign in (("left", -1.0), ("right", 1.0)):
        target = acpc.to_ras([sign * 12.0, -2.5, -4.0])
        entry = target + 70.0 * acpc.axes_ras.T @ approach_direction_acpc(side, 60.0, 15.0)
        trajectories.append({"side": side, "name": f"{side[0].upper()} STN", "target_ras": target.tolist(),
                             "entry_ras": entry.tolist()})
    return {"acpc": {"ac_ras": acpc.ac_ras.tolist(), "pc_ras": acpc.pc_ras.tolist(),
                     "midline_ras": acpc.midline_ras.tolist(), "mcp_ras": acpc.mcp_ras.tolist()},
            "frame": "virtual frame", "trajectories": trajectories}


def sample_ct(rotation_deg, translation_mm, seed, leads=True, **grid):
    """(CT volume, ct_to_mri truth, leads in MRI RAS) for the sample case under a random pose."""
    demo = demo_module()
    plan = sample_plan()
    pose = demo.random_pose(np.random.default_rng(seed), rotation_deg, translation_mm, plan["acpc"]["mcp_ras"])
    lead_list = demo.planned_leads(plan, demo.DEFAULT_OFFSETS, demo.DEFAULT_TILT_DEG) if leads else []
    options = {**TEST_GRID, **grid}
    ct = demo.make_ct_from_mri(sample_mri(), lead_list, pose, options["shape_ijk"], options["spacing_mm"],
                               options["slice_thickness_mm"], seed=seed, model=sample_ct_model())
    return ct, pose, lead_list


def target_points():
    plan = sample_plan()
    return [t["target_ras"] for t in plan["trajectories"]] + [plan["acpc"]["mcp_ras"]]


def test_mutual_information_fusion_is_within_half_a_millimetre_at_the_targets():
    ct, truth, _ = sample_ct(rotation_deg=15.0, translation_mm=20.0, seed=11)
    result = fusion.fuse_ct_to_mri(sample_mri(), ct)
    errors = fusion.fusion_error_mm(result.ct_to_mri_ras, truth, target_points())
    assert errors.max() <= 0.5, errors
    residual = result.ct_to_mri_ras @ np.linalg.inv(truth)
    assert fusion.rotation_angle_deg(residual) <= 0.5
    assert result.overlap >= 0.95
    assert np.isfinite(result.metric) and result.seconds > 0
    # A rigid result: a rotation (no scale, no mirror) and a translation.
    assert np.linalg.svd(result.ct_to_mri_ras[:3, :3], compute_uv=False) == pytest.approx([1, 1, 1], abs=1e-6)
    assert np.linalg.det(result.ct_to_mri_ras[:3, :3]) == pytest.approx(1.0, abs=1e-6)


def test_metal_is_left_out_of_the_metric_but_the_skull_is_not():
    ct, truth, leads = sample_ct(rotation_deg=8.0, translation_mm=10.0, seed=3)
    small = fusion.downsample_ct(ct, 1.0)
    metal = fusion.metal_mask(small, 800.0)
    mri_to_ct = np.linalg.inv(truth)
    for lead in leads:
        for depth_mm in (0.0, 10.0, 30.0):  # along each lead, from the tip up
            point = mri_to_ct[:3, :3] @ (lead["tip_ras"] + depth_mm * lead["direction_ras"]) + mri_to_ct[:3, 3]
            i, j, k = np.rint(small.ras_to_ijk_points(point)).astype(int)
            assert metal[k, j, i]
    # The skull (bone within 12 mm of the head's surface) stays in the metric, but where the leads cross it.
    depth = fusion.depth_inside_mm(fusion.ct_head_mask(small), small.spacing_mm)
    skull = (small.array > 1000) & (depth < 12.0)
    assert skull.sum() > 10000
    assert (skull & metal).sum() < 0.02 * skull.sum()
    assert metal.sum() < 0.01 * metal.size


def test_ct_to_ct_fusion_chained_to_the_mri():
    postop, postop_truth, _ = sample_ct(rotation_deg=12.0, translation_mm=15.0, seed=21)
    preop, preop_truth, _ = sample_ct(rotation_deg=10.0, translation_mm=20.0, seed=22, leads=False)
    postop_to_preop = fusion.fuse_ct_to_ct(preop, postop)
    true_postop_to_preop = np.linalg.inv(preop_truth) @ postop_truth
    preop_points = fusion.transform_points(np.linalg.inv(preop_truth), target_points())
    assert fusion.fusion_error_mm(postop_to_preop.ct_to_mri_ras, true_postop_to_preop, preop_points).max() <= 0.5
    known_preop = fusion.Fusion(preop_truth, float("nan"), 1.0, "known", 0.0)
    chained = fusion.chain(postop_to_preop, known_preop, sample_mri(), postop)
    assert fusion.fusion_error_mm(chained.ct_to_mri_ras, postop_truth, target_points()).max() <= 0.5


def _pose(angle_deg=10.0, shift=(5.0, -7.0, 12.0)):
    pose = np.eye(4)
    pose[:3, :3] = np.array(sitk.VersorTransform((0.3, -0.5, 0.8), np.radians(angle_deg)).GetMatrix()).reshape(3, 3)
    pose[:3, 3] = shift
    return pose


def test_transform_files_follow_the_slicer_convention(tmp_path):
    ct_to_mri = _pose()
    path = fusion.write_ct_to_mri_transform(ct_to_mri, tmp_path / "ct_to_mri.tfm", "mri-to-ct")
    # As Slicer stores a transform node that moves the CT onto the MRI: the file maps MRI points
    # (LPS) to CT points (LPS).
    mri_point = np.array([10.0, -20.0, 30.0])
    ct_point = fusion.transform_points(np.linalg.inv(ct_to_mri), mri_point)
    mapped = sitk.ReadTransform(str(path)).TransformPoint(tuple(ras_to_lps(mri_point)))
    assert np.array(mapped) == pytest.approx(ras_to_lps(ct_point), abs=1e-6)
    assert fusion.read_ct_to_mri_transform(path, "mri-to-ct") == pytest.approx(ct_to_mri, abs=1e-9)
    # Read with the other convention, the same file means the inverse.
    assert fusion.read_ct_to_mri_transform(path, "ct-to-mri") == pytest.approx(np.linalg.inv(ct_to_mri), abs=1e-9)
    other = fusion.write_ct_to_mri_transform(ct_to_mri, tmp_path / "forward.txt", "ct-to-mri")
    assert fusion.read_ct_to_mri_transform(other, "ct-to-mri") == pytest.approx(ct_to_mri, abs=1e-9)


def test_non_rigid_or_missing_transform_files_are_refused(tmp_path):
    scaled = sitk.AffineTransform(3)
    scaled.SetMatrix((1.1, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteTransform(scaled, str(tmp_path / "scaled.tfm"))
    with pytest.raises(DBSInputError, match="not rigid"):
        fusion.read_ct_to_mri_transform(tmp_path / "scaled.tfm")
    with pytest.raises(DBSInputError, match="not found"):
        fusion.read_ct_to_mri_transform(tmp_path / "missing.tfm")
    with pytest.raises(DBSInputError, match="unknown transform convention"):
        fusion.read_ct_to_mri_transform(tmp_path / "scaled.tfm", "frame-to-image")


def test_a_ct_that_does_not_overlap_the_mri_is_refused():
    ct, truth, _ = sample_ct(rotation_deg=5.0, translation_mm=5.0, seed=4, leads=False)
    assert fusion.check_overlap(sample_mri(), ct, truth) >= 0.95
    far = truth.copy()
    far[:3, 3] += [0.0, 0.0, 250.0]
    with pytest.raises(DBSInputError, match="does not overlap the MRI"):
        fusion.check_overlap(sample_mri(), ct, far)
    # Half the head shifted out: about half the MRI's head left inside the CT's.
    half = truth.copy()
    half[:3, 3] += [0.0, 0.0, 60.0]
    assert 0.2 < fusion.head_overlap(sample_mri(), ct, half) < 0.8
