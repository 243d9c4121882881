"""Python packages the module needs inside Slicer, checked before use and installed only with consent.

torch comes from Slicer's PyTorch extension (declared in the extension's EXTENSION_DEPENDS), never
from pip here. The other packages are installed with Slicer's pip helper after the user agreed;
nothing is installed at import time, and in batch mode (``interactive=False``) nothing is installed
at all: the caller gets a :class:`MissingDependencies` error naming what to install.
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Optional

#: import name -> pip requirement (what ``pyproject.toml`` asks for)
PIP_PACKAGES = {"scipy": "scipy>=1.9", "skimage": "scikit-image>=0.20", "SimpleITK": "SimpleITK>=2.2"}
#: Needed only by the steps that draw report figures (post-operative evaluation): asked for by those.
FIGURE_PACKAGES = {"matplotlib": "matplotlib>=3.6"}
TORCH_HINT = "Install the PyTorch extension from the Extension Manager (or its 'PyTorch Utils' module), then restart Slicer."


class MissingDependencies(RuntimeError):
    """Packages are missing and could not (or may not) be installed; the message says what to do."""


def _requirements(needs_figures: bool) -> dict:
    return {**PIP_PACKAGES, **(FIGURE_PACKAGES if needs_figures else {})}


def missing_packages(needs_torch: bool = False, find_spec: Callable = importlib.util.find_spec,
                     needs_figures: bool = False) -> list[str]:
    """Import names that cannot be found, ``torch`` first when asked for."""
    names = (["torch"] if needs_torch else []) + list(_requirements(needs_figures))
    return [name for name in names if find_spec(name) is None]


def ensure_packages(needs_torch: bool = False, interactive: bool = True,
                    confirm: Optional[Callable[[str], bool]] = None,
                    pip_install: Optional[Callable[[str], None]] = None,
                    find_spec: Callable = importlib.util.find_spec, needs_figures: bool = False) -> None:
    """Make sure the packages are importable (with ``needs_figures``, matplotlib too). ``confirm(question)``
    asks the user (a dialog inside Slicer); ``pip_install(requirements)`` is ``slicer.util.pip_install``.
    Raises :class:`MissingDependencies` with a message for the user when they are still missing."""
    missing = missing_packages(needs_torch, find_spec, needs_figures)
    if not missing:
        return
    if "torch" in missing:
        raise MissingDependencies(f"PyTorch is not installed. {TORCH_HINT}")
    requirements = " ".join(_requirements(needs_figures)[name] for name in missing)
    if not interactive or confirm is None or pip_install is None:
        raise MissingDependencies(
            f"Missing Python packages: {requirements}. Install them in Slicer's Python console with "
            f"slicer.util.pip_install('{requirements}') and run again."
        )
    if not confirm(f"DBS Targeting needs these Python packages: {requirements}.\n\nInstall them now? "
                   "(needs an internet connection; takes a minute)"):
        raise MissingDependencies(f"Not installed: {requirements}. The module cannot run without them.")
    try:
        pip_install(requirements)
    except Exception as error:  # noqa: BLE001 - pip fails in many ways; the user needs one message
        raise MissingDependencies(
            f"Installing {requirements} failed ({error}). If this computer is offline, install the packages "
            "on a connected one or ask your administrator; a restart of Slicer may be needed after installing."
        ) from error
    still_missing = missing_packages(needs_torch, find_spec, needs_figures)
    if still_missing:
        raise MissingDependencies(f"{', '.join(still_missing)} still cannot be imported: restart Slicer and try again.")
