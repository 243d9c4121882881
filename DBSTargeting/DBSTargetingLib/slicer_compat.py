"""The one place that knows how Slicer's API differs between the releases this module supports.

Every call whose name or availability changed between Slicer 5.8 and 5.13 goes through here; the rest
of the module calls these functions and never tests for a version itself.

- Segment terminology: ``vtkSegment.SetTerminology`` / ``GetTerminology`` exist from Slicer 5.10; before,
  the serialized terminology entry is the segment tag named ``vtkSegment.GetTerminologyEntryTagName()``.
- Python packages: ``slicer.pydeps.pip_ensure`` (Slicer 5.11 and later: checks versions, asks the user,
  shows progress) where it exists, else ``slicer.util.pip_install`` after the module asked the user.
- Output arguments of wrapped C++ methods: ``vtk.reference`` (VTK 9) where it exists, else the older
  ``vtk.mutable``.

Imports only ``vtk`` at module level (``slicer`` lazily), so it runs inside Slicer and under
``slicer-core``.
"""
from __future__ import annotations

import vtk


def _terminology_tag_name(segment) -> str:
    return segment.GetTerminologyEntryTagName()


def has_segment_terminology_api(segment) -> bool:
    """``True`` where the segment has ``SetTerminology`` (Slicer 5.10 and later)."""
    return callable(getattr(segment, "SetTerminology", None))


def set_segment_terminology(segment, entry: str) -> None:
    """Store a serialized terminology entry on ``segment`` (Slicer 5.10+: ``SetTerminology``; before: the tag)."""
    if has_segment_terminology_api(segment):
        segment.SetTerminology(entry)
    else:
        segment.SetTag(_terminology_tag_name(segment), entry)


def _output_string():
    maker = getattr(vtk, "reference", None) or vtk.mutable
    return maker("")


def segment_terminology(segment) -> str:
    """The serialized terminology entry of ``segment`` ("" when it has none), on every release."""
    getter = getattr(segment, "GetTerminology", None)
    if callable(getter):
        return getter() or ""
    value = _output_string()
    if not segment.GetTag(_terminology_tag_name(segment), value):
        return ""
    return str(value)


def pip_ensure_function():
    """``slicer.pydeps.pip_ensure`` where this Slicer has it (5.11+), else ``None``."""
    try:
        import slicer.pydeps as pydeps  # noqa: PLC0415
    except ImportError:
        return None
    return getattr(pydeps, "pip_ensure", None)


def terminology_logic():
    """Slicer's terminology module logic (``slicer.modules.terminologies.logic()``), or ``None`` where the
    module is not loaded (bare MRML scenes, some batch runs)."""
    try:
        import slicer  # noqa: PLC0415
    except ImportError:
        return None
    modules = getattr(slicer, "modules", None)
    terminologies = getattr(modules, "terminologies", None) if modules is not None else None
    if terminologies is None:
        return None
    try:
        return terminologies.logic()
    except Exception:  # noqa: BLE001 - a module without logic is the same as none
        return None
