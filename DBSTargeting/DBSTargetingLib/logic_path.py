"""Make the logic package ``DBSSegmentationLogic`` importable from the module file (issue #12, item 1).

Slicer puts a folder on ``sys.path`` only when it loads a module's ``.py`` file from it. In the build
and install trees of the extension the package folder sits beside ``DBSTargeting.py`` (CMake copies it
there), so it is importable as soon as the module is. In a source checkout started with
``--additional-module-paths /path/to/repo/DBSTargeting`` only the module folder is on the path while
the package lives one level up, at the repository root: this helper adds that folder (at the end of
``sys.path``, so it never shadows anything) when, and only when, the package is not importable yet.

Standard library only: it runs before anything else of the module is imported.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Optional

PACKAGE = "DBSSegmentationLogic"


def logic_folder_candidates(module_dir) -> list[Path]:
    """Folders that may hold the package: beside the module (build/install trees), then the parent of
    the module folder (a source checkout, where the module folder is ``<repo>/DBSTargeting``)."""
    module_dir = Path(module_dir).resolve()
    return [module_dir, module_dir.parent]


def ensure_logic_importable(module_dir, package: str = PACKAGE, path: Optional[list] = None) -> Optional[str]:
    """Make ``package`` importable; returns the folder added to ``path`` (``sys.path`` by default), or
    ``None`` when the package was importable already. Raises ``ImportError`` naming the folders looked
    in when the package is nowhere to be found."""
    path = sys.path if path is None else path
    if importlib.util.find_spec(package) is not None:
        return None
    candidates = logic_folder_candidates(module_dir)
    for folder in candidates:
        if (folder / package / "__init__.py").is_file():
            if str(folder) not in path:
                path.append(str(folder))
            importlib.invalidate_caches()
            return str(folder)
    raise ImportError(
        f"the DBS Targeting module cannot find its logic package '{package}': looked in "
        + ", ".join(str(folder) for folder in candidates)
        + ". Install the extension, or add the repository root to Slicer's module paths."
    )
