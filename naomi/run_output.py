"""Where `naomi run` prints: its own progress and summary on the terminal, everything else in a log.

Ray, MLflow, uvicorn and their children write through Python logging, `print`, `warnings`,
C-level writes and subprocesses that inherit the standard streams. Only the file descriptors
catch all of these, so while a pipeline runs, descriptors 1 and 2 point at the log file and the
display writes to duplicates of the terminal's descriptors taken before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Screen:
    """The terminal's own streams while library output goes to the log."""

    out: TextIO
    err: TextIO


@contextmanager
def library_output_to(log: Path) -> Iterator[Screen]:
    """Send descriptors 1 and 2 (and so sys.stdout/sys.stderr) to `log` until the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    screen = Screen(
        out=os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8", errors="replace"),
        err=os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace"),
    )
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield screen
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (*saved, target):
            os.close(descriptor)
        screen.out.close()
        screen.err.close()
