"""The background-process runner with real child processes (DESIGN section 7).

The child is a small Python script written by each test: it prints PROGRESS lines, starts a grandchild
(a sleeping Python process, as a launcher starting a worker would), writes its output atomically and
sleeps. Cancelling must end the child and the grandchild within 2 s and leave no file behind.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from DBSSegmentationLogic.cli.process_runner import ProcessRunner, parse_progress

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"), reason="process groups are POSIX here")

CHILD = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path

    out_dir, sleep_s, exit_code, mode = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    temporary, final = out_dir / ".tmp-labels.nii.gz", out_dir / "labels.nii.gz"

    def cancelled(signum, frame):
        temporary.unlink(missing_ok=True)
        print("cancelled", file=sys.stderr, flush=True)
        sys.exit(130)

    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, cancelled)
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (out_dir / "grandchild.pid").write_text(str(grandchild.pid))
    print("PROGRESS 0.00 reading", flush=True)
    print("a plain log line", flush=True)
    print("a warning on stderr", file=sys.stderr, flush=True)
    temporary.write_text("half written")
    print("PROGRESS 0.40 segmenting", flush=True)
    time.sleep(sleep_s)
    os.replace(temporary, final)
    grandchild.kill()
    grandchild.wait()
    if exit_code:
        final.unlink()
        print("error: the MRI has no voxels", file=sys.stderr, flush=True)
        sys.exit(exit_code)
    print("PROGRESS 1.00 done", flush=True)
    """
)


def _child(tmp_path: Path, sleep_s: float, exit_code: int = 0, mode: str = "cooperative") -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    return [sys.executable, str(script), str(out_dir), str(sleep_s), str(exit_code), mode]


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an orphan may wait to be reaped by init)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for_progress(runner: ProcessRunner, fraction: float, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while runner.progress[0] < fraction:
        assert time.monotonic() < deadline, f"no PROGRESS {fraction} line: {[line.text for line in runner.log]}"
        runner.poll()
        time.sleep(0.02)


def _wait_for_pid_file(path: Path, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.read_text().strip()):
        assert time.monotonic() < deadline, "the child did not start its grandchild"
        time.sleep(0.02)
    return int(path.read_text())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PROGRESS 0.40 segmenting", (0.40, "segmenting")),
        ("PROGRESS 1 done", (1.0, "done")),
        ("  PROGRESS 0.05   loading model  ", (0.05, "loading model")),
        ("PROGRESS 1.7 overshoot", (1.0, "overshoot")),
        ("PROGRESS -0.2", (0.0, "")),
        ("PROGRESS abc", None),
        ("progress 0.4 lower case", None),
        ("STN_left  140.0 mm3  ok", None),
    ],
)
def test_progress_lines_are_parsed(text, expected):
    assert parse_progress(text) == expected


def test_blocking_run_reports_progress_log_and_output(tmp_path):
    command = _child(tmp_path, sleep_s=0.1)
    seen = []

    result = ProcessRunner(command).start().wait(timeout_s=60, on_line=seen.append)

    assert result.status == "succeeded" and result.succeeded and not result.cancelled
    assert result.returncode == 0 and result.reason == ""
    assert [line.progress for line in seen if line.progress] == [(0.0, "reading"), (0.4, "segmenting"), (1.0, "done")]
    assert ("stdout", "a plain log line") in [(line.stream, line.text) for line in result.log]
    assert ("stderr", "a warning on stderr") in [(line.stream, line.text) for line in result.log]
    assert (tmp_path / "out" / "labels.nii.gz").read_text() == "half written"
    assert not (tmp_path / "out" / ".tmp-labels.nii.gz").exists()


def test_non_blocking_poll_gives_lines_then_result(tmp_path):
    runner = ProcessRunner(_child(tmp_path, sleep_s=0.3)).start()
    assert runner.running and runner.result is None

    lines = []
    deadline = time.monotonic() + 60
    while runner.result is None:
        assert time.monotonic() < deadline
        lines += runner.poll()  # never blocks: what a GUI timer calls
        time.sleep(0.02)

    assert runner.result.succeeded and not runner.running
    assert runner.progress == (1.0, "done")
    assert [line.text for line in lines] == [line.text for line in runner.result.log]
    assert runner.poll() == []


@pytest.mark.parametrize(("exit_code", "meaning"), [(2, "bad input"), (3, "internal failure")])
def test_failure_reports_exit_code_and_last_error_line(tmp_path, exit_code, meaning):
    result = ProcessRunner(_child(tmp_path, sleep_s=0.0, exit_code=exit_code)).start().wait(timeout_s=60)

    assert result.status == "failed" and not result.succeeded and not result.cancelled
    assert result.returncode == exit_code
    assert result.reason == f"error: the MRI has no voxels (exit code {exit_code}, {meaning})"


def test_command_that_cannot_start_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        ProcessRunner([str(tmp_path / "no-such-program")]).start()


@pytest.mark.parametrize("mode", ["cooperative", "ignore-term"])
def test_cancel_ends_the_whole_tree_within_2_s_and_leaves_no_file(tmp_path, mode):
    runner = ProcessRunner(_child(tmp_path, sleep_s=60, mode=mode), grace_s=0.5).start()
    _wait_for_progress(runner, 0.4)
    grandchild = _wait_for_pid_file(tmp_path / "out" / "grandchild.pid")
    child = runner.pid
    assert _alive(child) and _alive(grandchild)

    started = time.monotonic()
    runner.cancel()
    result = runner.wait(timeout_s=5)
    elapsed_s = time.monotonic() - started

    assert elapsed_s < 2.0
    assert result.status == "cancelled" and result.cancelled and not result.succeeded
    assert not _alive(child)
    deadline = time.monotonic() + 1.0  # the grandchild was killed with the group; give init time to reap it
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)
    if mode == "cooperative":
        assert result.returncode == 130  # the child's own "cancelled" exit code, after cleaning up
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["grandchild.pid"]
    else:
        assert result.returncode == -9  # SIGTERM ignored: killed after the grace period
    assert not (tmp_path / "out" / "labels.nii.gz").exists()


def test_wait_with_timeout_cancels(tmp_path):
    runner = ProcessRunner(_child(tmp_path, sleep_s=60), grace_s=0.5).start()

    result = runner.wait(timeout_s=1.0)

    assert result.cancelled
    assert not (tmp_path / "out" / "labels.nii.gz").exists()


def test_cancel_after_the_end_changes_nothing(tmp_path):
    runner = ProcessRunner(_child(tmp_path, sleep_s=0.0)).start()
    result = runner.wait(timeout_s=60)

    runner.cancel()

    assert runner.result is result and result.succeeded


def test_segment_command_is_cancelled_through_the_runner(tmp_path):
    """The real logic command in a real child: cancel ends it within 2 s and leaves no output."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("the segment command needs torch")
    import numpy as np

    from DBSSegmentationLogic.io.volumes import Volume, write_volume

    image = write_volume(Volume(np.zeros((40, 40, 40), np.float32), np.eye(4)), tmp_path / "mri.nii.gz")
    out = tmp_path / "seg"
    out.mkdir()
    runner = ProcessRunner(
        [sys.executable, "-m", "DBSSegmentationLogic", "segment", "--input", str(image),
         "--output", str(out / "labels.nii.gz"), "--device", "cpu", "--threads", "1"],
        cwd=Path(__file__).resolve().parents[2], grace_s=0.5,
    ).start()
    deadline = time.monotonic() + 30
    while not runner.log and runner.result is None:  # until its first line: torch is imported
        assert time.monotonic() < deadline, "the segment command printed nothing"
        runner.poll()
        time.sleep(0.02)

    started = time.monotonic()
    runner.cancel()
    result = runner.wait(timeout_s=5)

    assert time.monotonic() - started < 2.0
    assert result.status in ("cancelled", "failed")  # a blank image may fail by itself before the cancel
    assert not _alive(runner.pid)
    assert list(out.iterdir()) == []
