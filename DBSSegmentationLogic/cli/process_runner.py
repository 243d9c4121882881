"""Run a command as a child process that can be watched and cancelled (DESIGN section 7).

Pure Python (no ``slicer``, no ``qt``): the Slicer module drives it from a GUI timer with
:meth:`ProcessRunner.poll`, batch scripts and tests block on :meth:`ProcessRunner.wait`.

- The child starts in a session (process group) of its own, so :meth:`ProcessRunner.cancel` reaches
  the whole process tree, not only the launcher: SIGTERM to the group, then SIGKILL to the group after
  a short grace period (on Windows: ``taskkill /T /F``).
- stdout and stderr are read line by line on two threads into one queue, so neither pipe can fill up
  and block the child, and the caller never blocks on a read.
- ``PROGRESS <fraction> <message>`` lines on stdout update :attr:`ProcessRunner.progress`; every line
  (progress or not) is kept in :attr:`ProcessRunner.log`.
- A cancelled run ends with status ``"cancelled"``, whatever exit code the child died with.

Example::

    runner = ProcessRunner([sys.executable, "-m", "DBSSegmentationLogic", "segment", ...])
    runner.start()
    result = runner.wait()          # or: call runner.poll() from a timer until runner.result is set
    if result.status != "succeeded":
        print(result.reason)
"""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

#: Seconds a cancelled child gets to end after SIGTERM before the whole group is killed.
DEFAULT_GRACE_S = 1.0

#: The logic's exit codes (``DBSSegmentationLogic.cli``), as words for the user.
EXIT_CODE_MEANINGS = {0: "ok", 2: "bad input", 3: "internal failure", 130: "cancelled"}

_PROGRESS_LINE = re.compile(r"^PROGRESS\s+([-+0-9.eE]+)\s*(.*)$")
_IS_WINDOWS = sys.platform.startswith("win")


@dataclass(frozen=True)
class OutputLine:
    """One line the child printed. ``progress`` is ``(fraction, message)`` for a PROGRESS line."""

    stream: str  # "stdout" or "stderr"
    text: str
    progress: Optional[tuple[float, str]] = None


@dataclass
class ProcessResult:
    """How a run ended. ``status`` is ``"succeeded"``, ``"failed"`` or ``"cancelled"``."""

    status: str
    returncode: Optional[int]
    reason: str
    duration_s: float
    log: list = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


def parse_progress(text: str) -> Optional[tuple[float, str]]:
    """``(fraction in [0, 1], message)`` from a ``PROGRESS 0.40 segmenting`` line, else ``None``."""
    match = _PROGRESS_LINE.match(text.strip())
    if not match:
        return None
    try:
        fraction = float(match.group(1))
    except ValueError:
        return None
    return min(1.0, max(0.0, fraction)), match.group(2).strip()


class ProcessRunner:
    """One run of one command. Not reusable: make a new runner for the next run."""

    def __init__(self, command: Sequence[str], cwd=None, env: Optional[dict] = None, grace_s: float = DEFAULT_GRACE_S):
        self.command = [str(part) for part in command]
        self.cwd = None if cwd is None else str(cwd)
        self.env = env
        self.grace_s = grace_s
        self.log: list[OutputLine] = []
        self.progress: tuple[float, str] = (0.0, "")
        self.result: Optional[ProcessResult] = None
        self._process: Optional[subprocess.Popen] = None
        self._queue: "queue.Queue[Optional[OutputLine]]" = queue.Queue()
        self._open_streams = 0
        self._cancel_requested = False
        self._started_at = 0.0

    # --- starting ---------------------------------------------------------------------------------

    def start(self) -> "ProcessRunner":
        if self._process is not None:
            raise RuntimeError("this runner was already started")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # progress lines must arrive when printed
        options = {}
        if _IS_WINDOWS:
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            options["start_new_session"] = True  # own session and process group: cancel reaches the tree
        self._started_at = time.monotonic()
        self._process = subprocess.Popen(
            self.command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
            bufsize=1, **options,
        )
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            self._open_streams += 1
            threading.Thread(target=self._read, args=(name, stream), daemon=True, name=f"runner-{name}").start()
        return self

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self.result is None

    def _read(self, name: str, stream) -> None:
        try:
            for line in stream:
                text = line.rstrip("\r\n")
                self._queue.put(OutputLine(name, text, parse_progress(text) if name == "stdout" else None))
        except (OSError, ValueError):  # pipe closed under us
            pass
        finally:
            self._queue.put(None)  # this stream is done

    # --- watching ---------------------------------------------------------------------------------

    def poll(self) -> list[OutputLine]:
        """New output lines since the last call, without blocking; sets :attr:`result` once the
        child has exited and both its streams are read to the end."""
        if self._process is None:
            raise RuntimeError("start the runner first")
        lines = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._take(item, lines)
        self._finish_if_done()
        return lines

    def wait(self, timeout_s: Optional[float] = None, on_line: Optional[Callable[[OutputLine], None]] = None) -> ProcessResult:
        """Block until the child ends (blocking mode, for batch use and tests). ``on_line`` sees each
        line as it arrives. After ``timeout_s`` the run is cancelled."""
        if self._process is None:
            raise RuntimeError("start the runner first")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.result is None:
            if deadline is not None and time.monotonic() > deadline and not self._cancel_requested:
                self.cancel()
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                item = False
            lines = []
            if item is not False:
                self._take(item, lines)
            for line in lines:
                if on_line:
                    on_line(line)
            self._finish_if_done()
        return self.result

    def _take(self, item: Optional[OutputLine], lines: list) -> None:
        if item is None:
            self._open_streams -= 1
            return
        self.log.append(item)
        if item.progress is not None:
            self.progress = item.progress
        lines.append(item)

    def _finish_if_done(self) -> None:
        if self.result is not None or self._open_streams > 0 or self._process.poll() is None:
            return
        returncode = self._process.returncode
        if self._cancel_requested:
            status, reason = "cancelled", "cancelled by the user"
        elif returncode == 0:
            status, reason = "succeeded", ""
        else:
            status, reason = "failed", self._failure_reason(returncode)
        self.result = ProcessResult(status, returncode, reason, time.monotonic() - self._started_at, list(self.log))

    def _failure_reason(self, returncode: int) -> str:
        errors = [line.text for line in self.log if line.stream == "stderr" and line.text.strip()]
        meaning = EXIT_CODE_MEANINGS.get(returncode)
        if returncode < 0:
            meaning = f"killed by signal {-returncode}"
        code = f"exit code {returncode}" + (f", {meaning}" if meaning else "")
        return f"{errors[-1].strip()} ({code})" if errors else code

    # --- cancelling -------------------------------------------------------------------------------

    def cancel(self) -> None:
        """End the child and everything it started: SIGTERM to its process group, SIGKILL after the
        grace period. Returns when the child has exited (at most about ``grace_s`` later); the final
        lines and :attr:`result` come with the next :meth:`poll` or :meth:`wait`."""
        if self._process is None or self._cancel_requested:
            return
        self._cancel_requested = True
        if self._process.poll() is not None and self.result is not None:
            return
        if _IS_WINDOWS:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(self._process.pid)], capture_output=True, check=False)
            self._process.wait()
            return
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            pass
        # Always finish with SIGKILL to the group: a grandchild that outlived the launcher dies too.
        self._signal_group(signal.SIGKILL)
        self._process.wait()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self._process.pid, signum)  # the child leads its own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass
