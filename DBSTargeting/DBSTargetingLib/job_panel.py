"""The panel side of one background job of the module (segmentation, post-operative evaluation, frame
registration): its progress bar and log, a GUI timer that polls the child process, and start / finish /
cancel. One copy for the three jobs, so they cannot drift apart.

The job itself (``background_job.BackgroundJob`` and its subclasses) knows nothing of the GUI; this class
knows nothing of what the job computes: ``finish(job, inputs)`` turns a succeeded job into nodes.
"""
from __future__ import annotations

from typing import Any, Callable

import qt
import slicer


class JobPanel:
    #: How often the running job's output is read (ms).
    POLL_INTERVAL_MS = 100

    def __init__(self, title: str, progressBar, logTextEdit, finish: Callable[[Any, Any], None],
                 changed: Callable[[], None]) -> None:
        """``title`` in lower case ("frame registration"), for the messages; ``finish(job, inputs)`` makes the
        nodes of a job that succeeded (an exception is shown to the user); ``changed()`` is called whenever a
        job starts or ends (to update the buttons)."""
        self.title = title
        self.progressBar = progressBar
        self.logTextEdit = logTextEdit
        self._finish = finish
        self._changed = changed
        self.job = None
        self._inputs = None
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)

    @property
    def running(self) -> bool:
        return self.job is not None

    def log(self, text: str) -> None:
        self.logTextEdit.appendPlainText(text)

    def start(self, startJob: Callable[[], Any], inputs: Any) -> None:
        """Clear the panel and start the job returned by ``startJob()`` (an error is shown to the user and
        nothing starts); ``inputs`` are handed to ``finish`` when the job has succeeded."""
        self.logTextEdit.clear()
        self._resetProgress()
        try:
            with slicer.util.tryWithErrorDisplay(f"Cannot start the {self.title}.", waitCursor=True):
                job = startJob()
        except Exception:  # shown by tryWithErrorDisplay
            return
        self.job, self._inputs = job, inputs
        self.log(f"Started: {' '.join(job.runner.command[:4])} …")
        self._timer.start()
        self._changed()

    def cancel(self) -> None:
        """Stop the running job, if any: its whole process tree ends and its scratch folder goes; no node was
        made, so the scene is as it was."""
        job = self.job
        if job is None:
            return
        self._timer.stop()
        job.cancel()
        self.job = None
        self._resetProgress()
        self.log("Cancelled: the scene is unchanged.")
        self._changed()

    def close(self) -> None:
        """The module is being unloaded: end the job and the timer without touching the widgets."""
        self._timer.stop()
        if self.job is not None:
            self.job.cancel()
            self.job = None

    def _resetProgress(self) -> None:
        self.progressBar.value = 0
        self.progressBar.format = "%p%"

    def _poll(self) -> None:
        """GUI timer: show the child's new lines and progress; once it has ended, finish it."""
        job = self.job
        if job is None:
            self._timer.stop()
            return
        for line in job.poll():
            self.log(line.text if line.stream == "stdout" else f"[stderr] {line.text}")
        fraction, message = job.progress
        self.progressBar.value = int(round(100 * fraction))
        self.progressBar.format = f"%p%  {message}"
        if job.result is None:
            return
        self._timer.stop()
        self.job = None
        title = self.title[0].upper() + self.title[1:]
        try:
            if job.result.succeeded:
                try:
                    with slicer.util.tryWithErrorDisplay(f"Failed to show the {self.title} result.", waitCursor=True):
                        self._finish(job, self._inputs)
                except Exception:  # shown by tryWithErrorDisplay
                    self.log(f"{title} finished, but its result could not be shown (see the error).")
                    return
                self.log(f"Done in {job.result.duration_s:.0f} s.")
            else:
                self.log(f"{title} {job.result.status}: {job.result.reason}")
                if not job.result.cancelled:
                    slicer.util.errorDisplay(f"{title} failed: {job.result.reason}")
        finally:
            job.cleanup()
            self._changed()
