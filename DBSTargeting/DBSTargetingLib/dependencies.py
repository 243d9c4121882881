"""Python packages the module needs inside Slicer: checked before use, installed only with consent.

- The pip packages are listed in ONE file, ``DBSTargeting/Resources/requirements.txt`` (the same floors
  as ``pyproject.toml``). Inside the GUI, missing ones are installed after the user agreed: through
  ``slicer.pydeps.pip_ensure`` where this Slicer has it (5.11+; it asks and shows progress itself),
  else the module asks and calls ``slicer.util.pip_install``.
- torch comes from the PyTorch extension (a build dependency of this extension), the way
  SlicerTotalSegmentator and SlicerNNUnet get it: ``PyTorchUtils.PyTorchUtilsLogic().installTorch(
  askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT)``, which asks the user and returns
  ``None`` when they decline.
- Nothing is installed at import time, and in batch mode (``interactive=False``) nothing at all: the
  caller gets a :class:`MissingDependencies` (a ``DBSInputError``: exit code 2 in batch) naming what
  is missing and how to install it.

Pure Python (the Slicer calls are passed in or imported lazily), so it is tested without Slicer.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from DBSSegmentationLogic.io.exceptions import DBSInputError

#: The one requirements file of the module.
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"
#: torch version the shipped network needs (pyproject.toml's ``segmentation`` extra).
TORCH_REQUIREMENT = ">=2.2"
TORCH_HINT = ("Install the PyTorch extension from the Extension Manager, restart Slicer, and press Segment again "
              "(the module then offers to install PyTorch through PyTorch Utils).")
REQUESTER = "DBS Targeting"


def find_spec(name: str):
    """``importlib.util.find_spec`` (module-level so tests can stand in for a missing package)."""
    return importlib.util.find_spec(name)


class MissingDependencies(DBSInputError):
    """Packages are missing and could not (or may not) be installed; the message says what to do."""


@dataclass(frozen=True)
class Requirement:
    requirement: str  # as pip takes it, e.g. "scikit-image>=0.20"
    import_name: str  # e.g. "skimage"


def read_requirements(path=REQUIREMENTS_FILE) -> list[Requirement]:
    """The requirements file's entries (comments and blank lines skipped; ``# import: NAME`` read)."""
    requirements = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text, _, comment = line.partition("#")
        text = text.strip()
        if not text:
            continue
        match = re.match(r"\s*import:\s*([A-Za-z_][\w.]*)", comment)
        distribution = re.split(r"[<>=!~;\[ ]", text, maxsplit=1)[0]
        requirements.append(Requirement(text, match.group(1) if match else distribution))
    return requirements


def missing_requirements(requirements: Optional[list] = None) -> list[Requirement]:
    """Requirements whose module cannot be found (versions are checked by ``pip_ensure`` where it exists)."""
    return [r for r in (read_requirements() if requirements is None else requirements) if find_spec(r.import_name) is None]


def ensure_packages(interactive: bool = True, confirm: Optional[Callable[[str], bool]] = None,
                    pip_install: Optional[Callable[[str], None]] = None, pip_ensure: Optional[Callable] = None,
                    requirements: Optional[list] = None) -> None:
    """Make sure the pip packages of the requirements file are importable.

    ``pip_ensure`` is ``slicer.pydeps.pip_ensure`` where it exists (it asks the user itself and raises
    ``RuntimeError`` when they decline); otherwise ``confirm(question)`` asks and ``pip_install(text)``
    installs. Raises :class:`MissingDependencies` with a message for the user when packages stay missing.
    """
    missing = missing_requirements(requirements)
    if not missing:
        return
    text = " ".join(r.requirement for r in missing)
    if not interactive or (pip_ensure is None and (confirm is None or pip_install is None)):
        raise MissingDependencies(
            f"missing Python packages: {text}. Install them in Slicer's Python console with "
            f"slicer.util.pip_install('{text}') and run again"
        )
    try:
        if pip_ensure is not None:
            from packaging.requirements import Requirement as PipRequirement  # noqa: PLC0415 - Slicer ships packaging

            pip_ensure([PipRequirement(r.requirement) for r in missing], requester=REQUESTER)
        else:
            if not confirm(f"DBS Targeting needs these Python packages: {text}.\n\nInstall them now? "
                           "(needs an internet connection; takes a minute)"):
                raise MissingDependencies(f"not installed: {text}. The module cannot run without them")
            pip_install(text)
    except MissingDependencies:
        raise
    except Exception as error:  # noqa: BLE001 - declined (RuntimeError) or pip failed in one of many ways
        raise MissingDependencies(
            f"{text} not installed ({error}). If this computer is offline, install the packages on a connected "
            "one or ask your administrator; a restart of Slicer may be needed after installing"
        ) from error
    still_missing = missing_requirements(missing)
    if still_missing:
        raise MissingDependencies(
            f"{', '.join(r.requirement for r in still_missing)} still cannot be imported: restart Slicer and try again")


def ensure_torch(interactive: bool = True, torch_utils_logic: Optional[Callable] = None) -> None:
    """Make sure ``torch`` is importable. Inside the GUI, offer to install it through the PyTorch
    extension: ``torch_utils_logic()`` returns ``PyTorchUtils.PyTorchUtilsLogic()`` (raises
    ``ImportError`` when the extension is not installed); its ``installTorch(askConfirmation=True, ...)``
    asks the user. In batch mode nothing is installed."""
    if find_spec("torch") is not None:
        return
    if not interactive or torch_utils_logic is None:
        raise MissingDependencies(f"PyTorch (torch{TORCH_REQUIREMENT}) is not installed. {TORCH_HINT}")
    try:
        logic = torch_utils_logic()
    except ImportError as error:
        raise MissingDependencies(f"PyTorch is not installed and the PyTorch extension is missing. {TORCH_HINT}") from error
    torch = logic.installTorch(askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT)
    if torch is None:
        raise MissingDependencies("PyTorch was not installed (declined or failed): segmentation needs it. "
                                  "Install it from the PyTorch Utils module and try again")


def pytorch_utils_logic():
    """``PyTorchUtils.PyTorchUtilsLogic()`` of the PyTorch extension (``ImportError`` when it is missing)."""
    import PyTorchUtils  # noqa: PLC0415 - the PyTorch extension's module, loaded by Slicer

    return PyTorchUtils.PyTorchUtilsLogic()
