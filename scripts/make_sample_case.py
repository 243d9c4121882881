"""Build the bundled sample case (Resources/SampleCase) from the CIT168 template, reproducibly.

The "patient" is the CIT168 T1w template with its head turned in the scanner (pitch 8°, roll -5°,
yaw 6°, shifted 12 mm): the voxels are untouched and only the image geometry is rotated, so the
labels (CIT168 hard labels mapped to this package's codes) stay exact. The landmarks file holds the
template's AC, PC and midline point (Resources/Template/cit168_landmarks.json) moved the same way,
plus a target at the left STN centroid and an entry for the frame plan.

    python scripts/make_sample_case.py [--shared ../shared]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from DBSSegmentationLogic.io.markups import write_markups_points
from DBSSegmentationLogic.io.volumes import read_volume, write_volume
from DBSSegmentationLogic.segmentation.labels import BY_NAME, cit168_to_ours

REPO = Path(__file__).resolve().parents[1]
POSE_DEG = (8.0, -5.0, 6.0)  # rotation about R (pitch), A (roll), S (yaw)
SHIFT_MM = np.array([4.0, -12.0, 9.0])


def head_pose() -> np.ndarray:
    """4x4 RAS matrix moving the template head into its scanner pose."""
    rotation = np.array(sitk.Euler3DTransform((0, 0, 0), *np.radians(POSE_DEG)).GetMatrix()).reshape(3, 3)
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = SHIFT_MM
    return pose


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    out = REPO / "Resources" / "SampleCase"
    pose = head_pose()
    move = lambda point: pose[:3, :3] @ np.asarray(point, float) + pose[:3, 3]  # noqa: E731

    t1w = read_volume(args.shared / "data" / "cit168" / "cit168_t1w.nii.gz")
    labels = read_volume(args.shared / "data" / "cit168" / "cit168_labels.nii.gz")
    ours = labels.with_array(cit168_to_ours(labels.array))
    t1w.ijk_to_ras = pose @ t1w.ijk_to_ras
    ours.ijk_to_ras = pose @ ours.ijk_to_ras
    write_volume(t1w, out / "sample_t1w.nii.gz")
    write_volume(ours, out / "sample_labels.nii.gz")

    template = json.loads((REPO / "Resources" / "Template" / "cit168_landmarks.json").read_text(encoding="utf-8"))
    stn = np.argwhere(ours.array == BY_NAME["STN_left"].code).mean(axis=0)[::-1]
    target = ours.ijk_to_ras_points(stn)
    # Entry 70 mm from the target: 60° above the AC-PC plane (side view), 20° lateral (front view).
    entry_template = np.array([-np.tan(np.radians(20)), 1 / np.tan(np.radians(60)), 1.0])
    entry = target + 70.0 * pose[:3, :3] @ (entry_template / np.linalg.norm(entry_template))
    write_markups_points(out / "landmarks.mrk.json", {
        "AC": move(template["ac"]["ras_mm"]), "PC": move(template["pc"]["ras_mm"]),
        "Midline": move(template["midline"]["ras_mm"]), "Target": np.round(target, 2), "Entry": np.round(entry, 2),
    })
    print(f"sample case written to {out}")


if __name__ == "__main__":
    main()
