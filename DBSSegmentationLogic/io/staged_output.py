"""Atomic output: write to a temporary name in the target folder, rename at the end.

A failed or cancelled run therefore never leaves a half-written file, and never replaces a good
file from an earlier run with a broken one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix or path.suffix, dir=path.parent)
    os.close(file_descriptor)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def staged_output_folder(out):
    """Yield a temporary folder beside ``out``; on success every file in it is moved into ``out``
    (created if needed, other files there kept) in one all-or-nothing commit (see :func:`commit`), else
    nothing in ``out`` changes and folders this call created are removed again. The staging folder is
    always removed. Commands writing several files use it so a failed run leaves no mix."""
    out = Path(out)
    created = _make_folders(out.parent)
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
        yield staging
        created += _make_folders(out)
        commit([(produced, out / produced.name) for produced in sorted(staging.iterdir())])
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        _remove_folders(created)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged_files(destinations):
    """All-or-nothing output of several files, which may lie in different folders.

    Yields a dict destination -> staging path (a hidden name beside the destination, same suffix): write
    each output there. When the block succeeds and every staged file exists, all are moved into place by
    :func:`commit`; when it fails (or is cancelled), the staged files and the folders this call created
    are removed and every earlier file at a destination stays byte-identical. Takes any number of
    outputs, so a command can add one (e.g. an uncertainty map) by adding its path."""
    destinations = [Path(d) for d in destinations]
    token = uuid.uuid4().hex[:10]
    created: list[Path] = []
    staged = {}
    try:
        for destination in destinations:
            created += _make_folders(destination.parent)
            staged[destination] = destination.parent / f".tmp-{token}-{destination.name}"
        yield staged
        missing = [str(d) for d, s in staged.items() if not s.exists()]
        if missing:
            raise RuntimeError(f"output(s) not produced: {', '.join(missing)}")
        commit([(s, d) for d, s in staged.items()])
    except BaseException:
        for path in staged.values():
            _remove_path(path)
        _remove_folders(created)
        raise
    finally:
        for path in staged.values():
            _remove_path(path)


def commit(moves) -> None:
    """Move each (staged, destination) pair into place, all or nothing: an existing destination is first
    renamed to a backup; if any move fails (or the run is interrupted), the moved files are removed and
    the backups restored, so every destination holds exactly what it held before."""
    token = uuid.uuid4().hex[:10]
    backups, placed = [], []
    try:
        for staged, destination in moves:
            staged, destination = Path(staged), Path(destination)
            if destination.exists() or destination.is_symlink():
                backup = destination.parent / f".bak-{token}-{destination.name}"
                os.replace(destination, backup)
                backups.append((backup, destination))
            os.replace(staged, destination)
            placed.append(destination)
    except BaseException:
        for destination in reversed(placed):
            _remove_path(destination)
        for backup, destination in reversed(backups):
            os.replace(backup, destination)
        raise
    for backup, _ in backups:
        _remove_path(backup)


def _make_folders(folder: Path) -> list:
    """Create ``folder`` and missing parents; return those created, deepest first."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_folders(created) -> None:
    for folder in created:  # deepest first; only if still empty
        try:
            Path(folder).rmdir()
        except OSError:
            pass


def _remove_path(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path, document) -> Path:
    """Write a JSON document atomically (indented, UTF-8)."""
    with atomic_output(path, ".json") as temporary:
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return Path(path)
