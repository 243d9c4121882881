#!/usr/bin/env bash
# Install what is needed, then run the main job on the bundled sample case (Resources/SampleCase):
#   1. the frame settings (Leksell X/Y/Z, ring, arc) of the bundled target and entry;
#   2. the plan of both sides: automatic segmentation of STN, RN, SN, GPi and GPe (shipped model),
#      Bejjani STN targets, indirect targets, trajectories, frame settings, report and figures;
#   3. post-operative evaluation on a generated post-operative CT (leads at known offsets from the
#      plan, head moved in the scanner): fusion, electrode localization, errors, checked against the truth.
# Results go to output/sample_case/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_env.sh
CASE=Resources/SampleCase
OUT=output/sample_case
mkdir -p "$OUT"
.venv/bin/dbs-plan frame --markups "$CASE/landmarks.mrk.json" --mounting lateral-right --json "$OUT/frame_plan.json"
.venv/bin/dbs-plan plan --mri "$CASE/sample_t1w.nii.gz" \
  --markups "$CASE/landmarks.mrk.json" --target stn --mounting lateral-right --out "$OUT/plan"
.venv/bin/python scripts/make_demo_postop_ct.py --plan "$OUT/plan/plan.json" \
  --out-ct "$OUT/postop_ct.nii.gz" --out-truth "$OUT/postop_truth.json"
.venv/bin/dbs-plan postop --plan "$OUT/plan/plan.json" --ct "$OUT/postop_ct.nii.gz" --out "$OUT/postop"
.venv/bin/python scripts/make_demo_postop_ct.py --check "$OUT/postop/postop.json" "$OUT/postop_truth.json"
echo "Sample case done: frame settings in $OUT/frame_plan.json; plan report in $OUT/plan/report.md;"
echo "post-operative report in $OUT/postop/report.md"
