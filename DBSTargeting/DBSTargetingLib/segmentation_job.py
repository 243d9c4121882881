"""One background segmentation: the logic's ``segment`` command in a child process (DESIGN §7).

Pure Python (no ``slicer``, no Qt). The job writes the MRI into a scratch folder of its own, starts
``python -m DBSSegmentationLogic segment`` there (the running, polling, cancelling and clean-up are
those of :class:`~.background_job.BackgroundJob`), and on success reads the label map and the report
back as plain data. A cancelled or failed run leaves no file and no node.

The GUI calls :meth:`poll` from a timer; batch scripts and tests call :meth:`wait`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.volumes import Volume, read_volume, write_volume

from .background_job import LOGIC_ROOT, BackgroundJob, logic_command  # noqa: F401  (LOGIC_ROOT: kept importable here)

DEVICES = ("auto", "cpu", "cuda")


def segment_command(python_executable: str) -> list[str]:
    """The logic's segmentation command run by ``python_executable`` (Slicer's own Python in Slicer)."""
    return logic_command(python_executable, "segment")


class SegmentationJob(BackgroundJob):
    """Segment one MRI in a child process. Make a new job for each run."""

    name = "segmentation"
    scratch_prefix = "dbs-segmentation-"

    def __init__(
        self,
        mri: Volume,
        device: str = "auto",
        landmarks_ras: Optional[dict] = None,
        threads: int = 2,
        python_executable: Optional[str] = None,
        command: Optional[Sequence[str]] = None,
        grace_s: float = 1.0,
    ):
        """``landmarks_ras``: ``{"ac", "pc", "midline"}`` RAS points, or ``None`` for automatic
        localization. ``command`` replaces :func:`segment_command` (tests pass a stand-in script)."""
        if device not in DEVICES:
            raise DBSInputError(f"device must be one of {', '.join(DEVICES)}, not '{device}'")
        if landmarks_ras is not None and set(landmarks_ras) != {"ac", "pc", "midline"}:
            raise DBSInputError("give AC, PC and the midline point together, or none of them")
        super().__init__(list(command) if command else segment_command(python_executable), grace_s)
        self.mri = mri
        self.device = device
        self.landmarks_ras = landmarks_ras
        self.threads = threads

    def write_inputs(self, scratch: Path) -> list[str]:
        mri_path = write_volume(self.mri, scratch / "mri.nii.gz")
        arguments = [
            "--input", str(mri_path), "--output", str(self.labels_path), "--json", str(self.report_path),
            "--device", self.device, "--threads", str(self.threads),
        ]
        if self.landmarks_ras is not None:
            for name in ("ac", "pc", "midline"):
                arguments += [f"--{name}", *(f"{value:.6f}" for value in self.landmarks_ras[name])]
        return arguments

    @property
    def labels_path(self) -> Path:
        return self.scratch / "labels.nii.gz"

    @property
    def report_path(self) -> Path:
        return self.scratch / "labels.json"

    @property
    def uncertainty_path(self) -> Path:
        """Where the segment command writes its voxel-wise uncertainty map (``<labels stem>_uncertainty``
        beside the labels), when it writes one."""
        return self.scratch / "labels_uncertainty.nii.gz"

    # --- results ----------------------------------------------------------------------------------

    def outputs(self) -> tuple[Volume, dict]:
        """The label map (on the MRI's grid) and the command's JSON report of a succeeded run."""
        result = self.result
        if result is None or not result.succeeded:
            raise DBSInputError(f"segmentation did not succeed: {result.reason if result else 'not finished'}")
        labels = read_volume(self.labels_path)
        report = json.loads(self.report_path.read_text(encoding="utf-8")) if self.report_path.is_file() else {}
        return labels, report

    def uncertainty(self) -> Optional[Volume]:
        """The uncertainty map of a succeeded run, or ``None`` when the command wrote none."""
        if self.result is None or not self.result.succeeded or not self.uncertainty_path.is_file():
            return None
        return read_volume(self.uncertainty_path)
