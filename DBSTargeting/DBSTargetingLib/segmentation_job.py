"""One background segmentation: the logic's ``segment`` command in a child process (DESIGN §7).

Pure Python (no ``slicer``, no Qt). The job writes the MRI into a scratch folder of its own, starts
``python -m DBSSegmentationLogic segment`` there through :class:`ProcessRunner`, and on success reads
the label map and the report back as plain data. Whatever the outcome, :meth:`SegmentationJob.cleanup`
removes the scratch folder, so a cancelled or failed run leaves no file; and since nodes are made
only from a successful job's result, it leaves no node either.

The GUI calls :meth:`poll` from a timer; batch scripts and tests call :meth:`wait`.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import DBSSegmentationLogic
from DBSSegmentationLogic.exceptions import DBSInputError
from DBSSegmentationLogic.imageio import Volume, read_volume, write_volume
from DBSSegmentationLogic.process_runner import OutputLine, ProcessResult, ProcessRunner

DEVICES = ("auto", "cpu", "cuda")

#: Folder holding the ``DBSSegmentationLogic`` package: the child must import it too.
LOGIC_ROOT = Path(DBSSegmentationLogic.__file__).resolve().parents[1]


def segment_command(python_executable: str) -> list[str]:
    """The logic's segmentation command run by ``python_executable`` (Slicer's own Python in Slicer)."""
    return [python_executable, "-m", "DBSSegmentationLogic", "segment"]


class SegmentationJob:
    """Segment one MRI in a child process. Make a new job for each run."""

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
        self.mri = mri
        self.device = device
        self.landmarks_ras = landmarks_ras
        self.threads = threads
        self.command = list(command) if command else segment_command(python_executable or sys.executable)
        self.grace_s = grace_s
        self.scratch: Optional[Path] = None
        self.runner: Optional[ProcessRunner] = None

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> "SegmentationJob":
        self.scratch = Path(tempfile.mkdtemp(prefix="dbs-segmentation-"))
        try:
            mri_path = write_volume(self.mri, self.scratch / "mri.nii.gz")
            arguments = [
                "--input", str(mri_path), "--output", str(self.labels_path), "--json", str(self.report_path),
                "--device", self.device, "--threads", str(self.threads),
            ]
            if self.landmarks_ras is not None:
                for name in ("ac", "pc", "midline"):
                    arguments += [f"--{name}", *(f"{value:.6f}" for value in self.landmarks_ras[name])]
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LOGIC_ROOT), env.get("PYTHONPATH")]))
            self.runner = ProcessRunner([*self.command, *arguments], cwd=self.scratch, env=env, grace_s=self.grace_s)
            self.runner.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    @property
    def labels_path(self) -> Path:
        return self.scratch / "labels.nii.gz"

    @property
    def report_path(self) -> Path:
        return self.scratch / "labels.json"

    @property
    def progress(self) -> tuple[float, str]:
        return self.runner.progress if self.runner else (0.0, "")

    @property
    def result(self) -> Optional[ProcessResult]:
        return self.runner.result if self.runner else None

    def poll(self) -> list[OutputLine]:
        return self.runner.poll()

    def wait(self, on_line: Optional[Callable[[OutputLine], None]] = None, timeout_s: Optional[float] = None) -> ProcessResult:
        return self.runner.wait(timeout_s=timeout_s, on_line=on_line)

    def cancel(self) -> None:
        """Kill the child's whole process tree and remove the scratch folder."""
        if self.runner is not None:
            self.runner.cancel()
            self.runner.wait(timeout_s=5)
        self.cleanup()

    # --- results ----------------------------------------------------------------------------------

    def outputs(self) -> tuple[Volume, dict]:
        """The label map (on the MRI's grid) and the command's JSON report of a succeeded run."""
        result = self.result
        if result is None or not result.succeeded:
            raise DBSInputError(f"segmentation did not succeed: {result.reason if result else 'not finished'}")
        labels = read_volume(self.labels_path)
        report = json.loads(self.report_path.read_text(encoding="utf-8")) if self.report_path.is_file() else {}
        return labels, report

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
