"""Messages of the C++ libraries (ITK, GDCM, MetaIO, VTK) kept off the user's stderr.

A failed command prints exactly one line on stderr. ITK's and VTK's warnings, and the lines some readers
print straight to the C stderr (MetaIO's "data not read completely"), would break that; the command line
therefore calls :func:`quiet_libraries` once, and wraps library calls in :func:`captured_native_stderr`,
which sends what they print to the debug log (``DBS_DEBUG=1`` shows it) and hands it back to the caller.

Inside 3D Slicer nothing here is switched on: Slicer collects these messages in its own error log.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

LOGGER = logging.getLogger("DBSSegmentationLogic.library")

_capture_enabled = False


def quiet_libraries() -> None:
    """Turn ITK's warning display off and enable the capture of native stderr (command line only)."""
    global _capture_enabled
    _capture_enabled = True
    try:
        import SimpleITK as sitk

        sitk.ProcessObject_SetGlobalWarningDisplay(False)
    except ImportError:  # pragma: no cover - SimpleITK is a plain dependency
        pass


def quiet_vtk(vtk_module) -> None:
    """VTK's warnings and its logger (e.g. "bad X server connection" before the EGL fallback) off stderr."""
    vtk_module.vtkObject.GlobalWarningDisplayOff()
    logger = getattr(vtk_module, "vtkLogger", None)
    if logger is not None:
        logger.SetStderrVerbosity(logger.VERBOSITY_OFF)


@contextlib.contextmanager
def captured_native_stderr():
    """Redirect file descriptor 2 into a temporary file for the block; yield a list that receives the
    captured lines afterwards (also logged at debug level). Does nothing unless :func:`quiet_libraries`
    was called, so a host application's stderr is never touched."""
    lines: list[str] = []
    if not _capture_enabled:
        yield lines
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())
            for line in lines:
                LOGGER.debug("%s", line)
