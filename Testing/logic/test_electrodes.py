"""Electrode localization on synthetic post-operative CTs with a known ground truth."""
import numpy as np
import pytest
from geometry_strategies import rotation_matrix

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import Volume
from DBSSegmentationLogic.postop.electrodes import lead_from_points, localize_leads
from DBSSegmentationLogic.simulation.synthetic_ct import make_postop_ct

LEADS = [
    dict(side="left", tip=(-12.0, -2.5, -4.0), entry=(-32.0, 35.0, 60.0)),
    dict(side="right", tip=(11.5, -2.0, -4.5), entry=(28.0, 38.0, 62.0)),
]
FIELD_OF_VIEW = (110.0, 130.0, 100.0)


def posed(rotation_angles, shift):
    pose = np.eye(4)
    pose[:3, :3] = rotation_matrix(*rotation_angles)
    pose[:3, 3] = shift
    return pose


def errors(ct, detected):
    result = []
    for truth in ct.leads:
        lead = min(detected, key=lambda found: np.linalg.norm(np.subtract(found.tip_ras, truth.tip_ras)))
        angle = np.degrees(np.arccos(min(1.0, abs(np.dot(truth.direction_ras, lead.direction_ras)))))
        tip = np.linalg.norm(np.subtract(lead.tip_ras, truth.tip_ras))
        contacts = np.linalg.norm(np.subtract(lead.contact_centres_ras, truth.contact_centres_ras), axis=1).max()
        result.append((angle, tip, contacts))
    return np.array(result)


@pytest.mark.parametrize("slice_mm, tolerance_mm", [(1.0, 0.5), (2.0, 1.0)])
def test_axis_tip_and_contacts_are_found(slice_mm, tolerance_mm):
    ct = make_postop_ct(LEADS, spacing_mm=0.5, slice_thickness_mm=slice_mm, field_of_view_mm=FIELD_OF_VIEW,
                        pose=posed((0.12, -0.2, 0.3), (5.0, -20.0, 12.0)), seed=int(slice_mm))
    detected = localize_leads(ct.volume, model_name="medtronic-3389")
    assert len(detected) == 2
    angle, tip, contacts = errors(ct, detected).T
    assert angle.max() <= 2.0
    assert tip.max() <= tolerance_mm
    assert contacts.max() <= tolerance_mm


def test_no_lead_and_not_a_ct_are_refused():
    ct = make_postop_ct([], spacing_mm=1.0, slice_thickness_mm=2.0, field_of_view_mm=FIELD_OF_VIEW)
    with pytest.raises(DBSInputError, match="no DBS lead found"):
        localize_leads(ct.volume)
    mri_like = Volume(np.random.default_rng(0).integers(0, 255, (20, 20, 20)).astype(np.uint8), np.eye(4))
    with pytest.raises(DBSInputError, match="not a CT"):
        localize_leads(mri_like)


def test_fallback_from_two_user_points():
    lead = lead_from_points([0, 0, 0], [0, 3, 4])
    assert lead.direction_ras == pytest.approx([0, 0.6, 0.8])
    assert lead.contact_centres_ras[0] == pytest.approx((2.25 * np.array([0, 0.6, 0.8])).tolist())
    with pytest.raises(DBSInputError, match="2 mm"):
        lead_from_points([0, 0, 0], [0, 0, 1])
