"""A scratch copy of the project as it is on disk (render it with `naomi.render.diff.render_source`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from naomi.paths import PROJECT_DIR

IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", ".*_cache", ".naomi", "out", ".hypothesis", ".ci"
)


def copy_project(target: Path) -> Path:
    """The project's files (tracked or not) without environments and caches; returns `target`."""
    shutil.copytree(PROJECT_DIR, target, ignore=IGNORE)
    return target
