#!/usr/bin/env bash
# Run the MRML glue tests (Testing/mrml) against Slicer's real MRML classes from the `slicer-core` wheel,
# once per Slicer release the module supports: 5.12 (stable) and 5.13 (preview).
#
# Each release pins its own vtk (slicer-core 5.12.4.0 needs vtk 9.6.0, 5.13.31053.0 needs vtk 9.6.2),
# which clash with each other and with the development environment's vtk, so each release gets a
# virtual environment of its own at the repository root (ignored by git):
#   .venv-mrml-5.12   slicer-core==5.12.4.0    + vtk==9.6.0  (the 5.12.4 stable release)
#   .venv-mrml-5.13   slicer-core==5.13.31053.0 + vtk==9.6.2 (the 5.13 preview)
# An environment is created on first use and reused while its pins are unchanged.
#
# Known to work (Linux x86_64, CPython 3.11, only PyPI reachable): the pins below. numpy, SimpleITK,
# scipy and scikit-image are what the planning logic called by the case pipeline needs; jsonschema
# checks docs/DBSTargeting.json against the Extensions Index schema; matplotlib draws the figure of
# frame-register, which the module runs in the background. A fresh environment (venv + about
# 250 MB of wheels + the editable install of this repository) takes about 30 s of wall time on a 2-core
# machine with a fast link; a reused one starts at once; the tests take well under a minute per release.
#
# Usage: Testing/mrml/run_mrml_tests.sh [extra pytest arguments]
#   PYTHON=python3.11          interpreter that creates the environments (slicer-core needs >= 3.10)
#   MRML_RELEASES="5.12 5.13"  which releases to run (default both; e.g. MRML_RELEASES=5.13)
#   MRML_VENV_PREFIX=path      environments live at <path>-<release> (default: <repo>/.venv-mrml)
# Exit status: non-zero when the suite fails on any release (every release is run regardless).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
MRML_RELEASES="${MRML_RELEASES:-5.12 5.13}"
MRML_VENV_PREFIX="${MRML_VENV_PREFIX:-$REPO_ROOT/.venv-mrml}"
COMMON_PINS=(
  "numpy==2.4.6"
  "SimpleITK==2.5.7"
  "scipy==1.17.1"
  "scikit-image==0.26.0"
  "jsonschema==4.26.0"
  "matplotlib==3.11.2"
  "pytest==9.2.0"
)

release_pins() {
  case "$1" in
    5.12) echo "slicer-core==5.12.4.0 vtk==9.6.0" ;;
    5.13) echo "slicer-core==5.13.31053.0 vtk==9.6.2" ;;
    *) echo "unknown Slicer release '$1' (known: 5.12, 5.13)" >&2; return 2 ;;
  esac
}

prepare() {  # prepare <release>: create or update the release's environment
  local release="$1" venv="$MRML_VENV_PREFIX-$1"
  local pins
  pins="$(release_pins "$release") ${COMMON_PINS[*]}"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "Creating $venv with $PYTHON"
    "$PYTHON" -m venv "$venv"
  fi
  if [[ ! -f "$venv/.dbs-mrml-pins" ]] || [[ "$(cat "$venv/.dbs-mrml-pins")" != "$pins" ]]; then
    local start=$SECONDS
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086  # the pins are words
    "$venv/bin/python" -m pip install --quiet $pins
    echo "$pins" > "$venv/.dbs-mrml-pins"
    echo "Installed $pins in $((SECONDS - start)) s"
  fi
  # The logic package itself; its other dependencies are not needed by the glue tests.
  if ! (cd / && "$venv/bin/python" -c "import DBSSegmentationLogic" 2>/dev/null); then
    local log
    log="$(mktemp)"
    if ! "$venv/bin/python" -m pip install --quiet --no-deps -e "$REPO_ROOT" >"$log" 2>&1; then
      cat "$log"; rm -f "$log"; return 1
    fi
    rm -f "$log"
  fi
}

cd "$REPO_ROOT"
status=0
summary=()
for release in $MRML_RELEASES; do
  echo "=== MRML tests against slicer-core $release ($(release_pins "$release")) ==="
  if ! prepare "$release"; then
    summary+=("$release: environment could not be prepared")
    status=1
    continue
  fi
  if "$MRML_VENV_PREFIX-$release/bin/python" -m pytest "$REPO_ROOT/Testing/mrml" -q "$@"; then
    summary+=("$release: passed")
  else
    summary+=("$release: FAILED")
    status=1
  fi
done
printf '%s\n' "=== MRML summary ===" "${summary[@]}"
exit $status
