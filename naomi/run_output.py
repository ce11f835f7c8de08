"""Where `naomi run` prints: its own progress and summary on the terminal, everything else in a log.

Ray, MLflow, uvicorn and their children write through Python logging, `print`, `warnings`,
C-level writes and subprocesses that inherit the standard streams. Only the file descriptors
catch all of these, so while a pipeline runs, descriptors 1 and 2 point at the log file and the
display writes to duplicates of the terminal's descriptors taken before.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
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


@contextmanager
def interrupt_seen() -> Iterator[Callable[[], bool]]:
    """A check: has SIGINT (Ctrl-C) arrived since the block began, whichever handler took it?

    Ray Train takes SIGINT over during `fit()` (ray 2.60.0,
    python/ray/train/v2/api/data_parallel_trainer.py, `_register_sigint_handler`): it aborts
    the run, the driver's `ray.get` then raises SystemExit(1), not KeyboardInterrupt, and its
    handler stays installed. CPython writes the number of every signal it handles in Python to
    the wakeup descriptor (`signal.set_wakeup_fd`), whichever handler runs.
    """
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    seen = False

    def check() -> bool:
        nonlocal seen
        try:
            while chunk := os.read(read, 512):
                seen = seen or signal.SIGINT in chunk
        except BlockingIOError:
            pass
        return seen

    try:
        yield check
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
