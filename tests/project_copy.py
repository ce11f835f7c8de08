"""A scratch copy of the project (as it is on disk) and a render of it with its own code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from naomi.paths import PROJECT_DIR
from naomi.render.diff import read_tree

IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", ".*_cache", ".naomi", "out", ".hypothesis", ".ci"
)


def copy_project(target: Path) -> Path:
    """The project's files (tracked or not) without environments and caches; returns `target`."""
    shutil.copytree(PROJECT_DIR, target, ignore=IGNORE)
    return target


def render_copy(project: Path, stack: str, out: Path) -> dict[str, str]:
    """`naomi render` of `stack` in `project`, importing that copy's code; the written tree."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "naomi.cli",
            "render",
            "--stack",
            stack,
            "--out",
            str(out),
            "--project-dir",
            str(project),
        ],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return read_tree(out)
