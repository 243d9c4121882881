"""The segmentation engine end to end: held-out synthetic case (better than the atlas through the same
localization), sides under axis flips and head rotations, the real head's plausibility and plan, the
integrity check of the engine's shipped anatomy."""
import shutil

import numpy as np
import pytest
from label_metrics import dice

from DBSSegmentationLogic.geometry.acpc import AcpcSpace
from DBSSegmentationLogic.io.volumes import Volume, read_volume
from DBSSegmentationLogic.segmentation import engine as segmentation
from DBSSegmentationLogic.segmentation import labels as L
from DBSSegmentationLogic.training import synthesis

#: Entropy of the test's synthetic cases: used neither in training ([seed, step]), validation
#: ([1_000_003, v]) nor the benchmark ([2_000_017, n]).
TEST_ENTROPY = 3_000_001

# Regression guards for the generative engine, set below what it measures on this case (random
# label-driven contrast, 2 mm slices: mean Dice 0.776 where the atlas through the same localization gives
# 0.659; STN 0.81 / 0.48; worst centroid error 2.04 mm). The targets are measured by the
# benchmark on its physics-based contrasts (docs/segmentation.md), not here.
MEAN_DICE_MIN = 0.72
GAIN_OVER_ATLAS_MIN = 0.08
STN_DICE_MIN = 0.40
CENTROID_MAX_MM = 2.5


@pytest.fixture(scope="module")
def synthetic_case(shared_data):
    t1 = read_volume(shared_data / "cit168" / "cit168_t1w.nii.gz")
    cit = read_volume(shared_data / "cit168" / "cit168_labels.nii.gz")
    generator = synthesis.LabelDrivenGenerator(t1.array, cit.array, t1.ijk_to_ras)
    box = synthesis.brain_box_ras(t1.array, t1.ijk_to_ras)
    (image, matrix), (truth, _), _ = synthesis.synthesize_case(
        generator, np.random.default_rng([TEST_ENTROPY, 0]), box, slice_axis=2)
    return Volume(image, matrix), truth


@pytest.fixture(scope="module")
def synthetic_result(model, synthetic_case):
    return segmentation.segment(synthetic_case[0], model)


def test_held_out_synthetic_case_dice_and_centroids(synthetic_case, synthetic_result):
    volume, truth = synthetic_case
    predicted = synthetic_result.labels.array
    assert predicted.shape == truth.shape
    scores = {s.name: dice(predicted == s.code, truth == s.code) for s in L.STRUCTURES}
    assert np.mean(list(scores.values())) >= MEAN_DICE_MIN, scores
    atlas = segmentation.segment(volume, segmentation.load_model(device="cpu"), deform=False,
                                 localization=synthetic_result.localization).labels.array
    atlas_mean = np.mean([dice(atlas == s.code, truth == s.code) for s in L.STRUCTURES])
    assert np.mean(list(scores.values())) >= atlas_mean + GAIN_OVER_ATLAS_MIN, (scores, atlas_mean)
    assert min(scores["STN_left"], scores["STN_right"]) >= STN_DICE_MIN, scores
    for s in L.STRUCTURES:
        true_c = volume.ijk_to_ras_points(np.argwhere(truth == s.code).mean(0)[::-1])
        pred_c = volume.ijk_to_ras_points(np.argwhere(predicted == s.code).mean(0)[::-1])
        assert np.linalg.norm(true_c - pred_c) <= CENTROID_MAX_MM, (s.name, true_c, pred_c)


def _flip_axis(volume: Volume, axis_ijk: int) -> Volume:
    """Same anatomy in RAS, array reversed along one voxel axis."""
    array_axis = 2 - axis_ijk
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 3] += (volume.array.shape[array_axis] - 1) * matrix[:3, axis_ijk]
    matrix[:3, axis_ijk] *= -1
    return Volume(np.flip(volume.array, axis=array_axis).copy(), matrix)


def test_sides_follow_anatomy_when_image_axes_are_flipped(model, synthetic_case, synthetic_result):
    volume, _ = synthetic_case
    reference = {s.name: np.array(s.centroid_ras) for s in synthetic_result.structures}
    flipped = _flip_axis(_flip_axis(volume, 0), 1)
    result = segmentation.segment(flipped, model)
    acpc = AcpcSpace.from_landmarks(result.localization.ac_ras, result.localization.pc_ras,
                                    result.localization.midline_ras)
    for s in result.structures:
        assert "wrong_side" not in s.flags
        assert (acpc.to_acpc(s.centroid_ras)[0] > 0) == (L.BY_NAME[s.name].side == "right"), s.name
        assert np.linalg.norm(np.array(s.centroid_ras) - reference[s.name]) < 1.0, s.name


def _rotate_header(volume: Volume, axis: int, angle_deg: float) -> tuple[Volume, np.ndarray]:
    """Rotate the anatomy in RAS by changing only the header (about the image centre)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    rotation = np.eye(4)
    others = [i for i in range(3) if i != axis]
    rotation[np.ix_(others, others)] = [[c, -s], [s, c]]
    centre = volume.ijk_to_ras_points((np.array(volume.shape_ijk) - 1) / 2)
    to_centre, back = np.eye(4), np.eye(4)
    to_centre[:3, 3], back[:3, 3] = -centre, centre
    transform = back @ rotation @ to_centre
    return Volume(volume.array, transform @ volume.ijk_to_ras), transform


@pytest.fixture(scope="module")
def real_head(shared_data):
    return read_volume(shared_data / "real_heads" / "head01_t1w.nii.gz")


@pytest.fixture(scope="module")
def real_head_result(model, real_head):
    return segmentation.segment(real_head, model)


def test_real_head_structures_in_plausible_places(real_head_result):
    by_name = {s.name: s for s in real_head_result.structures}
    for s in real_head_result.structures:
        assert s.volume_mm3 > 0 and "wrong_side" not in s.flags, s.to_dict()
    for side in ("left", "right"):
        lateral, ap, vertical = by_name[f"STN_{side}"].centroid_acpc
        assert 9.0 <= abs(lateral) <= 14.0 and -5.0 <= ap <= 0.0 and -7.0 <= vertical <= -2.0, (side, lateral, ap, vertical)
        assert (lateral > 0) == (side == "right")
        # red nucleus medial and posterior to the STN, GPi lateral
        assert abs(by_name[f"RN_{side}"].centroid_acpc[0]) < abs(lateral)
        assert by_name[f"RN_{side}"].centroid_acpc[1] < ap
        assert abs(by_name[f"GPi_{side}"].centroid_acpc[0]) > abs(lateral) + 4


@pytest.mark.parametrize("axis", [0, 2])
def test_real_head_rotated_30_degrees_gives_the_same_anatomy(model, real_head, real_head_result, axis):
    rotated, transform = _rotate_header(real_head, axis, 30.0)
    result = segmentation.segment(rotated, model)
    for before, after in zip(real_head_result.structures, result.structures):
        expected = transform[:3, :3] @ np.array(before.centroid_ras) + transform[:3, 3]
        assert np.linalg.norm(np.array(after.centroid_ras) - expected) < 1.5, before.name


def test_corrupted_engine_anatomy_is_refused(tmp_path):
    from DBSSegmentationLogic.segmentation import priors

    for path in (priors.MANIFEST_PATH, priors.ANATOMY_PATH):
        shutil.copy(path, tmp_path / path.name)
    segmentation.load_model(tmp_path / "manifest.json", device="cpu")  # intact copy loads
    anatomy = tmp_path / priors.ANATOMY_PATH.name
    data = bytearray(anatomy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    anatomy.write_bytes(bytes(data))
    with pytest.raises(segmentation.ModelIntegrityError, match="SHA-256"):
        segmentation.load_model(tmp_path / "manifest.json", device="cpu")


#: Issue 4 asks for each STN target within 4 mm of its indirect target on the real head (the generative
#: engine gives 2.3 mm left, 2.6 mm right; the network before it gave 4.3 mm).
REAL_HEAD_DIRECT_TO_INDIRECT_MAX_MM = 4.0


def test_real_head_plan_completes_with_targets_near_the_indirect_ones(real_head_result):
    from DBSSegmentationLogic.planning.plan import plan_with_quality

    located = real_head_result.localization
    acpc = AcpcSpace.from_landmarks(located.ac_ras, located.pc_ras, located.midline_ras)
    plan = plan_with_quality(real_head_result.labels, acpc, "stn", template_to_image_ras=located.template_to_input_ras)
    assert plan["failures"] == {}
    by_side = {t["side"]: t for t in plan["trajectories"]}
    assert sorted(by_side) == ["left", "right"]
    for side, trajectory in by_side.items():
        lateral, ap, vertical = trajectory["target_acpc"]
        assert (lateral > 0) == (side == "right") and 5.0 < abs(lateral) < 15.0, (side, trajectory["target_acpc"])
        assert trajectory["direct_to_indirect_mm"] <= REAL_HEAD_DIRECT_TO_INDIRECT_MAX_MM, (side, trajectory["direct_to_indirect_mm"])


def test_real_head_slab_gives_the_same_structures(model, real_head, real_head_result):
    """A 60 mm axial slab (25 mm below to 35 mm above the STN: midbrain and pallidum, no vertex, no
    cerebellum) is localized and segmented like the whole head."""
    whole = {s.name: s for s in real_head_result.structures}
    assert np.argmax(np.abs(real_head.ijk_to_ras[2, :3])) == 2 and real_head.ijk_to_ras[2, 2] > 0  # k runs to S
    stn_k = real_head.ras_to_ijk_points(np.array(whole["STN_left"].centroid_ras))[2]
    slice_mm = real_head.ijk_to_ras[2, 2]
    low, high = int(stn_k - 25 / slice_mm), int(stn_k + 35 / slice_mm)
    shift = np.eye(4)
    shift[2, 3] = low
    slab = Volume(np.ascontiguousarray(real_head.array[low:high]), real_head.ijk_to_ras @ shift)
    for s in segmentation.segment(slab, model).structures:
        assert not set(s.flags) - {"uncertain"}, s.to_dict()  # the STN on T1 may be flagged uncertain
        assert np.linalg.norm(np.subtract(s.centroid_ras, whole[s.name].centroid_ras)) < 1.0, s.name
