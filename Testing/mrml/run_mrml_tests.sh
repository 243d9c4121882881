#!/usr/bin/env bash
# Run the MRML glue tests (Testing/mrml) against Slicer's real MRML classes from the `slicer-core` wheel.
#
# slicer-core pins its own vtk (==9.6.2), which clashes with the development environment's vtk, so it
# gets a virtual environment of its own: .venv-mrml at the repository root (ignored by git). The
# environment is created on first use and reused while the pins below are unchanged.
#
# Known to work (Linux x86_64, CPython 3.11, only PyPI reachable):
#   slicer-core 5.13.31053.0 (cp311 manylinux_2_28 wheel, 43 MB) + vtk 9.6.2 (146 MB, pulled by slicer-core)
#   numpy 2.4.6, SimpleITK 2.5.7, pytest 9.2.0; scipy 1.17.1 and scikit-image 0.26.0 for the planning
#   logic that the module's case pipeline calls (Testing/mrml/test_case_pipeline.py)
# A fresh environment (venv + about 250 MB of wheels + the editable install of this repository) took
# about 30 s of wall time on a 2-core machine with a fast link (pip cache off); a reused one starts at
# once, and the tests themselves take about 2-6 s.
#
# Usage: Testing/mrml/run_mrml_tests.sh [extra pytest arguments]
#   PYTHON=python3.11   interpreter that creates the environment (slicer-core needs >= 3.10; 3.11 tested)
#   MRML_VENV=path      where the environment lives (default: <repo>/.venv-mrml)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
MRML_VENV="${MRML_VENV:-$REPO_ROOT/.venv-mrml}"
PINS=(
  "slicer-core==5.13.31053.0"
  "vtk==9.6.2"
  "numpy==2.4.6"
  "SimpleITK==2.5.7"
  "scipy==1.17.1"
  "scikit-image==0.26.0"
  "pytest==9.2.0"
)
STAMP="$MRML_VENV/.dbs-mrml-pins"

cd "$REPO_ROOT"

if [[ ! -x "$MRML_VENV/bin/python" ]]; then
  echo "Creating $MRML_VENV with $PYTHON"
  "$PYTHON" -m venv "$MRML_VENV"
fi

if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "${PINS[*]}" ]]; then
  start=$SECONDS
  "$MRML_VENV/bin/python" -m pip install --quiet --upgrade pip
  "$MRML_VENV/bin/python" -m pip install --quiet "${PINS[@]}"
  echo "${PINS[*]}" > "$STAMP"
  echo "Installed ${PINS[*]} in $((SECONDS - start)) s"
fi

if [[ -f "$REPO_ROOT/pyproject.toml" ]]; then
  # The logic package itself; its other dependencies are not needed by the glue tests.
  if ! (cd / && "$MRML_VENV/bin/python" -c "import DBSSegmentationLogic" 2>/dev/null); then
    log="$(mktemp)"
    if ! "$MRML_VENV/bin/python" -m pip install --quiet --no-deps -e "$REPO_ROOT" >"$log" 2>&1; then
      cat "$log"; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  fi
else
  export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

exec "$MRML_VENV/bin/python" -m pytest "$REPO_ROOT/Testing/mrml" -q "$@"
