"""Command line: ``dbs-plan <command>`` (also ``python -m DBSSegmentationLogic <command>``).

Exit codes: 0 success, 2 bad input (one line on stderr names the problem), 3 internal failure,
130 cancelled.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Optional, Sequence

from .. import __version__
from ..io.exceptions import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_INTERNAL_ERROR,
    DBSInputError,
)
from ..io.library_output import quiet_libraries
from . import frame as frame_command
from . import frame_register as frame_register_command
from . import plan as plan_command
from . import postop as postop_command
from . import segment as segment_command


class OneLineArgumentParser(argparse.ArgumentParser):
    """Bad options are bad input like any other: exit 2 with exactly one line on stderr."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="dbs-plan", description="Deep brain stimulation planning: segmentation, targets, frame settings."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    frame_command.register(subparsers)
    frame_register_command.register(subparsers)
    plan_command.register(subparsers)
    postop_command.register(subparsers)
    segment_command.register(subparsers)
    return parser


@contextlib.contextmanager
def sigterm_as_cancel():
    """SIGTERM (the Slicer module's cancel) ends a command like Ctrl-C: its staging is removed, exit 130.
    Only the main thread can set a signal handler; elsewhere the default stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_keyboard_interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # Library messages (ITK, GDCM, MetaIO, VTK) go to the debug log, never as stray stderr lines;
    # DBS_DEBUG=1 prints that log (and tracebacks).
    quiet_libraries()
    if os.environ.get("DBS_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        with sigterm_as_cancel():
            return args.handler(args)
    except DBSInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as error:  # noqa: BLE001 - one line for the user; DBS_DEBUG=1 shows the traceback
        if os.environ.get("DBS_DEBUG"):
            raise
        print(f"internal error: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
