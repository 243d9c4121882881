"""Options and helpers shared by the commands: landmark options, markups files, progress lines."""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from ..io.exceptions import DBSInputError
from ..io.markups import find_landmarks, read_markups_points

LANDMARK_OPTIONS = ("ac", "pc", "midline", "target", "entry")


def add_point_option(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(f"--{name}", nargs=3, type=float, metavar=("R", "A", "S"), help=f"{help_text} (RAS mm)")


def add_markups_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--markups", action="append", default=[], metavar="FILE.mrk.json",
        help="Slicer markups file(s) with points labelled AC, PC, midline, target, entry; "
        "points given as options take precedence",
    )


def collect_landmarks(args, required: Sequence[str], names: Sequence[str] = LANDMARK_OPTIONS) -> dict[str, np.ndarray]:
    """Landmarks ``names`` from markups files, overridden by explicit options; error if a required one is missing."""
    landmarks: dict[str, np.ndarray] = {}
    for markups_path in args.markups:
        for name, point in find_landmarks(read_markups_points(markups_path)).items():
            if name in names:
                landmarks[name] = point
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            landmarks[name] = np.array(value, dtype=float)
    missing = [name for name in required if name not in landmarks]
    if missing:
        raise DBSInputError(
            "missing landmark(s): " + ", ".join(missing) + " (give --" + " --".join(missing) + " or a markups file)"
        )
    return landmarks


def progress(fraction: float, message: str) -> None:
    """One machine-readable progress line (DESIGN section 7), read by the Slicer module's job runner."""
    print(f"PROGRESS {fraction:.2f} {message}", flush=True)


#: What to install for each optional part (pyproject extras).
OPTIONAL_MODULES = {
    "torch": 'segmentation needs PyTorch, which is not installed: pip install "dbs-targeting[segmentation]" (or install torch)',
}


def require_module(name: str, alternative: str = ""):
    """Import an optional dependency, or refuse with one line saying what to install (exit 2);
    ``alternative`` is appended (e.g. ", or give --labels")."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        message = OPTIONAL_MODULES.get(name, f"the Python package '{name}' is not installed")
        raise DBSInputError(message + alternative) from None
