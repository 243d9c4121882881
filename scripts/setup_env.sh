#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment .venv and install everything the logic, its
# command line and its tests need. Safe to run again. Usage: source-free, `bash scripts/setup_env.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=64"
# torch first and pinned: an unpinned requirement would pull several GB of CUDA wheels. The package
# itself only asks for torch>=2.2, which the pinned CPU build satisfies.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[segmentation,report,test]"
.venv/bin/python -c "import torch, SimpleITK, DBSSegmentationLogic; print('environment ready: torch', torch.__version__, '| SimpleITK', SimpleITK.Version_VersionString())"
