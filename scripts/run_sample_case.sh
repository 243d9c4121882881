#!/usr/bin/env bash
# Install what is needed, then run the main job on the bundled sample case (Resources/SampleCase):
#   1. the frame settings (Leksell X/Y/Z, ring, arc) of the bundled target and entry;
#   2. the plan of both sides: automatic segmentation of STN, RN, SN, GPi and GPe (shipped model),
#      Bejjani STN targets, indirect targets, trajectories, frame settings, report and figures.
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
echo "Sample case done: frame settings in $OUT/frame_plan.json; plan report in $OUT/plan/report.md"
