"""One background frame registration: the logic's ``frame-register`` command in a child process (issue #14).

Pure Python (no ``slicer``, no Qt). The job writes the frame CT or MRI into a scratch folder of its own and
runs there

    python -m DBSSegmentationLogic frame-register --image IMG --localizer PRESET_OR_FILE --out DIR

(the N-localizer rods found, the rigid image-to-frame transform fitted to every fiducial). On success
:meth:`FrameRegistrationJob.outputs` returns ``DIR/frame_registration.json`` as a dict: its
``image_to_frame_ras`` maps image RAS to frame RAS (frame centre at the origin), the matrix a Slicer
transform node that moves the image into the frame holds "to parent" (read once, here, from the report:
the ``.tfm`` beside it holds the inverse, as Slicer saves such a node). Running, polling, cancelling and
clean-up are those of :class:`~.background_job.BackgroundJob`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import Volume, write_volume

from .background_job import BackgroundJob, logic_command

#: The localizer presets of ``DBSSegmentationLogic/frame_registration/presets`` (file stems).
DEFAULT_LOCALIZER = "leksell-g"


def localizer_presets() -> list[str]:
    """Names of the localizer geometries shipped with the logic (``--localizer`` presets), read from the
    presets folder itself: importing ``frame_registration`` would import scipy, which may not be installed
    yet when the module loads."""
    import DBSSegmentationLogic

    folder = Path(DBSSegmentationLogic.__file__).resolve().parent / "frame_registration" / "presets"
    return sorted(path.stem for path in folder.glob("*.json")) or [DEFAULT_LOCALIZER]


class FrameRegistrationJob(BackgroundJob):
    """Register the stereotactic localizer on one frame CT or MRI in a child process."""

    name = "frame registration"
    scratch_prefix = "dbs-frame-"

    def __init__(self, image: Volume, localizer: str = DEFAULT_LOCALIZER, max_rms_mm: Optional[float] = None,
                 python_executable: Optional[str] = None, command: Optional[Sequence[str]] = None, grace_s: float = 1.0):
        if image is None:
            raise DBSInputError("select the frame CT or MRI (with the localizer) first")
        if not localizer:
            raise DBSInputError("choose the localizer")
        super().__init__(list(command) if command else logic_command(python_executable, "frame-register"), grace_s)
        self.image = image
        self.localizer = localizer
        self.max_rms_mm = max_rms_mm

    def write_inputs(self, scratch: Path) -> list[str]:
        image_path = write_volume(self.image, scratch / "frame_image.nii", compress=False)
        arguments = ["--image", str(image_path), "--localizer", self.localizer, "--out", str(self.out_dir)]
        if self.max_rms_mm is not None:
            arguments += ["--max-rms", f"{self.max_rms_mm:g}"]
        return arguments

    @property
    def out_dir(self) -> Path:
        return self.scratch / "out"

    def outputs(self) -> dict:
        """``frame_registration.json`` of a succeeded run (raises as :meth:`require_success` otherwise)."""
        self.require_success()
        path = self.out_dir / "frame_registration.json"
        if not path.is_file():
            raise RuntimeError(f"{self.name} ended without writing {path.name}")
        report = json.loads(path.read_text(encoding="utf-8"))
        if "image_to_frame_ras" not in report:
            raise RuntimeError(f"{path.name} has no image_to_frame_ras")
        return report
