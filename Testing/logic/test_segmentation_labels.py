"""Label codes, synthesis reproducibility and geometry (fast, no network)."""
import numpy as np
import pytest
import torch

from DBSSegmentationLogic.io.volumes import read_volume
from DBSSegmentationLogic.segmentation import labels as L
from DBSSegmentationLogic.segmentation import template
from DBSSegmentationLogic.training import synthesis



def test_codes_names_sides_and_cit168_sources():
    assert [s.code for s in L.STRUCTURES] == list(range(1, 11))
    assert [s.name for s in L.STRUCTURES][:4] == ["STN_left", "STN_right", "RN_left", "RN_right"]
    assert L.BY_NAME["SN_left"].cit168_codes == (7, 9)
    assert L.BY_NAME["SN_right"].cit168_codes == (107, 109)
    assert L.BY_NAME["GPe_right"].cit168_codes == (105,)
    assert all(s.side == ("left" if s.code % 2 else "right") for s in L.STRUCTURES)
    assert L.mirror_lookup().tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9]


def test_cit168_mapping_puts_left_codes_at_negative_x(shared_data):
    labels = read_volume(shared_data / "cit168" / "cit168_labels.nii.gz")
    ours = L.cit168_to_ours(labels.array)
    for s in L.STRUCTURES:
        centroid = labels.ijk_to_ras_points(np.argwhere(ours == s.code).mean(0)[::-1])
        assert (centroid[0] < 0) == (s.side == "left"), s.name
    # STN left centroid as documented in the data README (RAS mm)
    stn = labels.ijk_to_ras_points(np.argwhere(ours == 1).mean(0)[::-1])
    assert np.allclose(stn, [-11.1, -12.7, -7.6], atol=0.1)
    # colour table: background + ten structures
    assert len(L.colour_table_lines()) == 12


@pytest.fixture(scope="module")
def roi_generator(shared_data):
    t1 = read_volume(shared_data / "cit168" / "cit168_t1w.nii.gz")
    cit = read_volume(shared_data / "cit168" / "cit168_labels.nii.gz")
    roi = template.roi_ijk_to_template_ras()
    box = np.array([roi[:3, 3] - 20, roi[:3, 3] + np.array(template.ROI_SHAPE_IJK) + 20])
    return synthesis.LabelDrivenGenerator(t1.array, cit.array, t1.ijk_to_ras, crop_box_ras=box)


def test_generator_is_reproducible_and_seed_dependent(roi_generator):
    grid = template.roi_ijk_to_template_ras()
    a_img, a_lab = roi_generator.sample(np.random.default_rng([5, 1]), template.roi_array_shape(), grid)
    b_img, b_lab = roi_generator.sample(np.random.default_rng([5, 1]), template.roi_array_shape(), grid)
    c_img, _ = roi_generator.sample(np.random.default_rng([5, 2]), template.roi_array_shape(), grid)
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    assert float((a_img - c_img).abs().mean()) > 0.05
    assert set(torch.unique(a_lab).tolist()) == set(range(11))


def test_identity_pose_without_deformation_reproduces_template_labels(roi_generator, shared_data):
    config = roi_generator.config
    saved = (config.coarse_displacement_mm, config.fine_displacement_mm)
    config.coarse_displacement_mm = config.fine_displacement_mm = 0.0
    try:
        _, labels = roi_generator.sample(np.random.default_rng(0), template.roi_array_shape(),
                                         template.roi_ijk_to_template_ras(), allow_mirror=False)
    finally:
        config.coarse_displacement_mm, config.fine_displacement_mm = saved
    cit = read_volume(shared_data / "cit168" / "cit168_labels.nii.gz")
    ours = L.cit168_to_ours(cit.array)
    roi = template.roi_ijk_to_template_ras()
    for s in L.STRUCTURES:
        # ROI voxel centres sit half-way between template voxel centres: compare centroids and volumes
        roi_centroid = np.argwhere(labels.numpy() == s.code).mean(0)[::-1] @ roi[:3, :3].T + roi[:3, 3]
        template_centroid = cit.ijk_to_ras_points(np.argwhere(ours == s.code).mean(0)[::-1])
        assert np.linalg.norm(roi_centroid - template_centroid) < 0.6, s.name
        assert int((labels == s.code).sum()) == pytest.approx(int((ours == s.code).sum()), rel=0.1), s.name


def test_mirror_swaps_sides_about_the_template_midline():
    labels = torch.zeros(template.roi_array_shape(), dtype=torch.long)
    labels[20, 30, 10] = L.BY_NAME["STN_left"].code  # x = -39.5 + 10 = -29.5 mm
    _, mirrored = synthesis.mirror_left_right(torch.zeros(labels.shape), labels)
    k, j, i = np.argwhere(mirrored.numpy() == L.BY_NAME["STN_right"].code)[0]
    assert template.ROI_ORIGIN_TEMPLATE_RAS[0] + i == pytest.approx(29.5)


def test_user_landmarks_give_the_rigid_acpc_alignment():
    from DBSSegmentationLogic.segmentation import localization

    landmarks = template.load_landmarks()
    identity = localization.from_user_landmarks(landmarks["ac"], landmarks["pc"], landmarks["midline"])
    assert np.allclose(identity.template_to_input_ras, np.eye(4), atol=1e-9)
    # a head shifted by (5, -3, 10) mm and turned 20 degrees about the vertical axis
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = {name: rotation @ point + [5.0, -3.0, 10.0] for name, point in landmarks.items()}
    located = localization.from_user_landmarks(moved["ac"], moved["pc"], moved["midline"])
    stn_template = np.array([-11.1, -12.7, -7.6])
    expected = rotation @ stn_template + [5.0, -3.0, 10.0]
    matrix = located.template_to_input_ras
    assert np.allclose(matrix[:3, :3] @ stn_template + matrix[:3, 3], expected, atol=1e-6)
    assert np.allclose(located.ac_ras, moved["ac"])
