#!/usr/bin/env bash
# Install what is needed, then run the main job on the bundled sample case (Resources/SampleCase):
# the frame plan (Leksell X/Y/Z, ring and arc) from its landmarks. Results go to output/sample_case/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_env.sh
OUT=output/sample_case
mkdir -p "$OUT"
.venv/bin/dbs-plan frame --markups Resources/SampleCase/landmarks.mrk.json --mounting lateral-right --json "$OUT/frame_plan.json"
echo "Sample case done: $OUT/frame_plan.json"
