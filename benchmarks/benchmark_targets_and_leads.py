"""Accuracy and time of the Bejjani construction and of electrode localization on phantoms.

    .venv/bin/python benchmarks/benchmark_targets_and_leads.py

Prints, per voxel size, the largest distance between the constructed and the analytic STN/PSA
targets over four head/image poses (ellipsoidal RN and STN, Testing/logic/test_targets_bejjani.py),
and, per slice thickness, the electrode axis/tip/contact errors on synthetic post-operative CTs.
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing" / "logic"))

from test_electrodes import FIELD_OF_VIEW, LEADS, errors, posed  # noqa: E402
from test_targets_bejjani import POSES, analytic_targets, make_case  # noqa: E402

from DBSSegmentationLogic.planning.targets import BEJJANI_PRESETS, bejjani_targets  # noqa: E402
from DBSSegmentationLogic.postop.electrodes import localize_leads  # noqa: E402
from DBSSegmentationLogic.simulation.synthetic_ct import make_postop_ct  # noqa: E402

print("Bejjani construction: largest target error over 4 poses x 2 sides (mm), time per construction (s)")
for spacing in (0.3, 0.5, 1.0):
    for preset in ("stn", "psa"):
        expected, _ = analytic_targets(*BEJJANI_PRESETS[preset])
        worst, seconds, failed = 0.0, [], []
        for pose in POSES:
            labels, acpc = make_case(*pose, spacing_mm=spacing)
            started = time.perf_counter()
            result = bejjani_targets(labels, acpc, preset=preset)
            seconds.append(time.perf_counter() - started)
            for side in ("left", "right"):
                if not result.sides[side].ok:
                    failed.append(result.sides[side].failure)
                    continue
                worst = max(worst, float(np.linalg.norm(np.array(result.sides[side].target_acpc) - expected[side])))
        print(f"  voxels {spacing:.1f} mm  {preset.upper():3s}  max error {worst:.3f} mm  time {np.mean(seconds):.2f} s"
              + (f"  ({len(failed)} sides failed: {failed[0]})" if failed else ""))

print("Electrode localization (2 leads, 0.5 mm in-plane): worst axis angle (deg), tip and contact errors (mm)")
for slice_mm in (1.0, 2.0):
    ct = make_postop_ct(LEADS, spacing_mm=0.5, slice_thickness_mm=slice_mm, field_of_view_mm=FIELD_OF_VIEW,
                        pose=posed((0.12, -0.2, 0.3), (5.0, -20.0, 12.0)), seed=int(slice_mm))
    started = time.perf_counter()
    detected = localize_leads(ct.volume)
    seconds = time.perf_counter() - started
    angle, tip, contacts = errors(ct, detected).T
    print(f"  slices {slice_mm:.0f} mm  angle {angle.max():.3f}  tip {tip.max():.3f}  contacts {contacts.max():.3f}"
          f"  localization {seconds:.1f} s")
