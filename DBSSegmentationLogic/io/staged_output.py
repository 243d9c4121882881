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
    (created if needed, other files there kept), else nothing in ``out`` changes. The staging folder
    is always removed. Commands writing several files use it so a failed run leaves no mix."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        yield staging
        out.mkdir(parents=True, exist_ok=True)
        for produced in sorted(staging.iterdir()):
            produced.replace(out / produced.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path, document) -> Path:
    """Write a JSON document atomically (indented, UTF-8)."""
    with atomic_output(path, ".json") as temporary:
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return Path(path)
