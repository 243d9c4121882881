"""Saving a scene as a Slicer data bundle (.mrb) and reading one back.

Both work in the Slicer app and in a bare ``slicer-core`` scene (which needs a cache manager with a
remote cache folder before reading: the app provides one, tests set it up in ``Testing/mrml``).
The bundle is written under a temporary name and renamed at the end, so a failed save never leaves a
half-written file or spoils an earlier one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from DBSSegmentationLogic.io.exceptions import DBSInputError


def save_mrb(scene, path) -> Path:
    """Write the whole scene (every node with its data) to ``path`` (.mrb)."""
    path = Path(path)
    if path.suffix.lower() != ".mrb":
        raise DBSInputError(f"a scene bundle must end in .mrb: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same file name in a temporary folder beside the target: the bundle's inner scene file is named
    # after it, and the final rename stays on one file system.
    with tempfile.TemporaryDirectory(prefix=".tmp-mrb-", dir=path.parent) as folder:
        temporary = Path(folder) / path.name
        if not scene.WriteToMRB(str(temporary)) or not temporary.is_file():
            raise DBSInputError(f"the scene could not be saved to {path}")
        os.replace(temporary, path)
    return path


def load_mrb(scene, path, clear: bool = True) -> None:
    """Read a scene bundle into ``scene`` (replacing its content when ``clear``)."""
    path = Path(path)
    if not path.is_file():
        raise DBSInputError(f"no scene bundle at {path}")
    if not scene.ReadFromMRB(str(path), clear):
        raise DBSInputError(f"the scene bundle {path} could not be read")
