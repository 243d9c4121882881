#!/usr/bin/env bash
# Install what the tests need, then run every test suite: the logic (pytest) and the Slicer glue
# against the real MRML classes of slicer-core (its own environment, see Testing/mrml).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_env.sh
.venv/bin/python -m pytest Testing/logic -q
bash Testing/mrml/run_mrml_tests.sh
