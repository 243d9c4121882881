"""One run of a logic command in a child process, with a scratch folder of its own (DESIGN §7).

Pure Python (no ``slicer``, no Qt). A job writes its inputs into a fresh scratch folder
(:meth:`BackgroundJob.write_inputs`, given by each kind of job), starts the logic's command there
through :class:`ProcessRunner`, and on success reads the outputs back as plain data. Whatever the
outcome, :meth:`BackgroundJob.cleanup` removes the scratch folder, so a cancelled or failed run leaves
no file; and since nodes are made only from a successful job's outputs, it leaves no node either.

The GUI calls :meth:`BackgroundJob.poll` from a timer; batch scripts and tests call
:meth:`BackgroundJob.wait`. Kinds of jobs: :class:`~.segmentation_job.SegmentationJob` (``segment``)
and :class:`~.postop_job.PostopJob` (``postop``).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import DBSSegmentationLogic
from DBSSegmentationLogic.cli.process_runner import (
    OutputLine,
    ProcessResult,
    ProcessRunner,
)
from DBSSegmentationLogic.io.exceptions import EXIT_BAD_INPUT, DBSInputError

#: Folder holding the ``DBSSegmentationLogic`` package: the child must import it too.
LOGIC_ROOT = Path(DBSSegmentationLogic.__file__).resolve().parents[1]


def logic_command(python_executable: Optional[str], subcommand: str) -> list[str]:
    """``python -m DBSSegmentationLogic <subcommand>`` run by ``python_executable`` (Slicer's own
    Python inside Slicer; this interpreter when ``None``)."""
    return [python_executable or sys.executable, "-m", "DBSSegmentationLogic", subcommand]


class BackgroundJob:
    """Base of the module's background jobs. Make a new job for each run.

    A subclass sets :attr:`name` (for messages), :attr:`scratch_prefix`, and implements
    :meth:`write_inputs` (returns the command's arguments) and its own way to read the outputs.
    """

    name = "job"
    scratch_prefix = "dbs-job-"

    def __init__(self, command: Sequence[str], grace_s: float = 1.0):
        self.command = list(command)
        self.grace_s = grace_s
        self.scratch: Optional[Path] = None
        self.runner: Optional[ProcessRunner] = None

    def write_inputs(self, scratch: Path) -> list[str]:
        """Write the inputs into ``scratch``; return the arguments that follow :attr:`command`."""
        raise NotImplementedError

    # --- running ----------------------------------------------------------------------------------

    def start(self):
        self.scratch = Path(tempfile.mkdtemp(prefix=self.scratch_prefix))
        try:
            arguments = self.write_inputs(self.scratch)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LOGIC_ROOT), env.get("PYTHONPATH")]))
            self.runner = ProcessRunner([*self.command, *arguments], cwd=self.scratch, env=env, grace_s=self.grace_s)
            self.runner.start()
        except BaseException:
            self.cleanup()
            raise
        return self

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

    def require_success(self) -> None:
        """Raise unless the run succeeded: :class:`DBSInputError` when the run was cancelled or the
        child refused its input (exit code 2), ``RuntimeError`` for an internal failure."""
        result = self.result
        if result is None:
            raise DBSInputError(f"{self.name} has not finished")
        if result.succeeded:
            return
        message = f"{self.name} {result.status}: {result.reason}"
        if result.cancelled or result.returncode == EXIT_BAD_INPUT:
            raise DBSInputError(message)
        raise RuntimeError(message)

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
